"""The bpf/ specs: valid against their schema, consistent with their scripts, and chosen by
what the kernel offers."""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field, replace

import jsonschema
import pytest
import yaml

from burstguard.bpf import checking, choosing, specs

BPF = pathlib.Path(__file__).parent.parent.parent / "bpf"


def all_specs() -> tuple[specs.ScriptSpec, ...]:
    return specs.load_all(BPF)


@dataclass
class KernelBuilder:
    """A made-up kernel for the chooser."""

    release: str = "6.18.44"
    tracefs: str | None = "/sys/kernel/tracing"
    tracepoints: set[str] = field(
        default_factory=lambda: {tp for s in all_specs() for tp in s.kernel.tracepoints}
    )
    functions: set[str] | None = None
    symbols: set[str] | None = field(default_factory=set)

    def build(self) -> choosing.KernelFacts:
        return choosing.KernelFacts(
            release=self.release,
            tracefs=self.tracefs,
            tracepoints=frozenset(self.tracepoints),
            functions=None if self.functions is None else frozenset(self.functions),
            symbols=None if self.symbols is None else frozenset(self.symbols),
        )


def chosen(facts: choosing.KernelFacts) -> dict[str, choosing.Choice]:
    return {c.spec.name: c for c in choosing.choose(all_specs(), facts)}


class TestSpecFiles:
    def test_every_spec_validates_against_the_schema(self) -> None:
        schema = json.loads((BPF / "spec.schema.json").read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        for path in sorted(BPF.glob("*.yaml")):
            jsonschema.validate(yaml.safe_load(path.read_text()), schema)

    def test_every_script_has_a_spec_and_a_header_and_prints_its_maps(self) -> None:
        loaded = all_specs()
        assert {s.name for s in loaded} == {p.stem for p in BPF.glob("*.bt")}
        for spec in loaded:
            assert checking.static_problems(spec, spec.script_path.read_text()) == []

    def test_a_spec_naming_a_map_the_script_lacks_is_a_problem(self) -> None:
        spec = all_specs()[0]
        bad = replace(spec, metrics=(*spec.metrics, replace(spec.metrics[0], name="nope_ns")))
        assert "spec metric 'nope_ns' is not a map of the script" in checking.static_problems(
            bad, spec.script_path.read_text()
        )

    def test_a_script_that_clears_a_metric_map_outside_end_is_a_problem(self) -> None:
        spec = specs.load(BPF / "mount_latency.yaml")
        text = spec.script_path.read_text().replace(
            "\tprint(@mount_ns);\n", "\tprint(@mount_ns);\n\tclear(@mount_ns);\n"
        )
        problems = checking.static_problems(spec, text)
        assert any("@mount_ns is cleared in 'interval:s:5'" in p for p in problems), problems

    def test_a_spec_whose_name_does_not_match_its_file_is_refused(
        self, tmp_path: pathlib.Path
    ) -> None:
        body = yaml.safe_load((BPF / "reclaim.yaml").read_text())
        with pytest.raises(specs.SpecError, match="must match the file stem"):
            specs.parse(body, tmp_path / "other.yaml")


class TestCheckVerdicts:
    def test_an_unresolved_symbol_the_spec_declares_is_a_parse_only_pass(self) -> None:
        spec = next(s for s in all_specs() if s.name == "shrinker_lock")
        output = (
            "AST after: parser\nAST after: Semantic\n"
            "ERROR: Failed to compile: Failed to resolve kernel symbol: shrinker_rwsem\n"
        )
        ok, how = checking.classify(1, output, spec, frozenset({"shrinker_rwsem"}))
        assert ok and how.startswith("parsed")

    def test_a_syntax_error_fails_even_when_symbols_are_absent(self) -> None:
        spec = next(s for s in all_specs() if s.name == "shrinker_lock")
        output = "x.bt:1:26-27: ERROR: syntax error, unexpected }\n"
        ok, how = checking.classify(1, output, spec, frozenset({"shrinker_rwsem"}))
        assert not ok and "syntax error" in how

    def test_an_unresolved_symbol_that_this_kernel_has_fails(self) -> None:
        spec = next(s for s in all_specs() if s.name == "shrinker_lock")
        output = "AST after: Semantic\nERROR: Failed to resolve kernel symbol: shrinker_rwsem\n"
        assert not checking.classify(1, output, spec, frozenset())[0]


class TestChoosing:
    def test_on_6_18_the_tracepoint_scripts_run_and_the_pre_6_7_kprobe_script_does_not(
        self,
    ) -> None:
        c = chosen(KernelBuilder().build())
        assert {n for n, x in c.items() if x.run} == {
            "mount_latency",
            "reclaim",
            "shrinker_lock_6_7",
        }
        assert "before 6.7" in c["shrinker_lock"].reason

    def test_on_6_1_with_lock_tracepoints_the_kprobe_script_is_covered_by_tracepoints(self) -> None:
        facts = KernelBuilder(
            release="6.1.0-28-amd64",
            functions={
                "down_read_trylock",
                "up_read",
                "prealloc_shrinker",
                "register_shrinker_prepared",
                "unregister_shrinker",
            },
            symbols={"shrinker_rwsem"},
        ).build()
        c = chosen(facts)
        assert c["shrinker_lock_6_7"].run
        assert (
            not c["shrinker_lock"].run
            and "covered by shrinker_lock_6_7" in c["shrinker_lock"].reason
        )

    def test_on_5_15_without_lock_tracepoints_the_kprobe_script_runs(self) -> None:
        builder = KernelBuilder(
            release="5.15.0-91-generic",
            functions={
                "down_read_trylock",
                "up_read",
                "prealloc_shrinker",
                "register_shrinker_prepared",
                "unregister_shrinker",
            },
            symbols={"shrinker_rwsem"},
        )
        builder.tracepoints -= {"lock:contention_begin", "lock:contention_end"}
        c = chosen(builder.build())
        assert c["shrinker_lock"].run and not c["shrinker_lock_6_7"].run

    def test_without_kallsyms_all_the_kprobe_script_names_the_missing_symbol(self) -> None:
        builder = KernelBuilder(
            release="5.15.0",
            functions={
                "down_read_trylock",
                "up_read",
                "prealloc_shrinker",
                "register_shrinker_prepared",
                "unregister_shrinker",
            },
        )
        builder.tracepoints -= {"lock:contention_begin", "lock:contention_end"}
        assert "shrinker_rwsem" in chosen(builder.build())["shrinker_lock"].reason

    def test_without_tracefs_nothing_runs_and_the_reason_says_so(self) -> None:
        c = chosen(KernelBuilder(tracefs=None, tracepoints=set()).build())
        assert not any(x.run for x in c.values())
        assert "tracefs" in c["reclaim"].reason
