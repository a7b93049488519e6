"""The combined bpftrace program, the windows from cumulative readings, and the trim ranges."""

from __future__ import annotations

import pathlib

import pytest

from burstguard.bpf import combining, decoding, specs, trimming

BPF = pathlib.Path(__file__).parent.parent.parent / "bpf"


def load(name: str) -> tuple[specs.ScriptSpec, str]:
    spec = specs.load(BPF / f"{name}.yaml")
    return spec, spec.script_path.read_text()


def test_every_map_of_every_script_is_renamed_with_the_script_prefix() -> None:
    program = combining.combine([load("mount_latency"), load("shrinker_lock_6_7")])
    assert "@mount_latency__mount_start[tid]" in program
    assert "@shrinker_lock_6_7__in_mount[tid]" in program
    bare = [m for m in combining._MAP.findall(program) if "__" not in m]
    assert bare == []


def test_one_interval_block_prints_every_metric_map_and_one_end_block_clears_every_map() -> None:
    program = combining.combine([load("mount_latency"), load("reclaim")])
    assert program.count("interval:s:") == 1 and program.count("\nEND\n") == 1
    interval = program[program.index("interval:s:5") : program.index("\nEND\n")]
    assert "print(@reclaim__shrink_slab_ns);" in interval
    assert "print(@mount_latency__mount_ns);" in interval
    assert "clear(" not in interval  # cumulative: never cleared between readings
    assert "clear(@reclaim__slab_start);" in program[program.index("\nEND\n") :]


def test_a_block_body_with_braces_in_strings_and_comments_is_split_at_the_right_brace() -> None:
    text = '/* { */ kprobe:f /@x[tid]/ { printf("}\\n"); if (1) { @y = 1; } }\nEND { clear(@x); }'
    got = combining.blocks(text)
    assert [b.header for b in got] == ["kprobe:f /@x[tid]/", "END"]


def test_an_unbalanced_script_is_a_clear_error() -> None:
    with pytest.raises(combining.CombineError, match="after the last complete block"):
        combining.blocks("kprobe:f { @x = 1;")


def test_a_combined_window_is_split_per_script_by_prefix() -> None:
    window = decoding.Window(
        maps={
            "mount_latency__mount_ns": decoding.MapValue(numbers={"": 1}),
            "shrinker_lock_6_7__mount_lock_wait_ns": decoding.MapValue(numbers={"": 2}),
            "stray": decoding.MapValue(numbers={"": 3}),
        }
    )
    got = combining.split(window, ["mount_latency", "shrinker_lock_6_7", "reclaim"])
    assert set(got["mount_latency"].maps) == {"mount_ns"}
    assert set(got["shrinker_lock_6_7"].maps) == {"mount_lock_wait_ns"}
    assert got["reclaim"].maps == {}


def hist(*buckets: tuple[int, int, int]) -> decoding.MapValue:
    return decoding.MapValue(histograms={"overlay": tuple(decoding.Bucket(*b) for b in buckets)})


def test_the_window_is_the_difference_of_two_cumulative_readings() -> None:
    before = decoding.Window(
        maps={"mount_ns": hist((1024, 2047, 3)), "wakes": decoding.MapValue(numbers={"": 5})}
    )
    after = decoding.Window(
        maps={
            "mount_ns": hist((1024, 2047, 3), (4096, 8191, 2)),
            "wakes": decoding.MapValue(numbers={"": 9}),
        }
    )
    window = decoding.difference(before, after)
    assert window.maps["mount_ns"].histograms == {"overlay": (decoding.Bucket(4096, 8191, 2),)}
    assert window.maps["wakes"].numbers == {"": 4}
    assert decoding.difference(None, after).maps["wakes"].numbers == {"": 9}


def test_only_llvm_and_clang_mappings_are_handed_back() -> None:
    maps = (
        "55a0-55b0 r-xp 00000000 08:01 1 /usr/bin/bpftrace\n"
        "7f00-7f10 r--p 00000000 08:01 2 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1\n"
        "7f10-7f30 r-xp 00010000 08:01 2 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1\n"
        "7f40-7f48 r-xp 00000000 08:01 3 /usr/lib/x86_64-linux-gnu/libclang-14.so.14\n"
        "7f50-7f58 rw-p 00000000 00:00 0\n"
    )
    assert trimming.compiler_ranges(maps) == [(0x7F00, 0x10), (0x7F10, 0x20), (0x7F40, 0x8)]


def test_trimming_a_process_that_does_not_exist_says_why() -> None:
    got = trimming.page_out_compiler(2**22 + 12345)
    assert got.advised_bytes == 0 and "cannot read" in got.reason
