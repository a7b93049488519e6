/*
 * labload: the workload that runs inside the incident-lab guest.
 *
 * One static binary (gcc -O2 -static) so the guest needs nothing but busybox. Modes:
 *   labload layers DIR L F KB   build L lower layers DIR/l0..l{L-1}, F files of KB each
 *   labload files DIR N         create N empty files (ext4 inodes + dentries for the slab)
 *   labload negdent DIR N PROCS NAMELEN SLAB_MB
 *                               stat() misses (negative dentries, reclaimable slab)
 *   labload hog MB              fault in MB of anonymous memory, then sleep until killed
 *   labload grow MB RATE        fault in MB of anonymous memory at RATE MiB/s (a node's
 *                               running pods growing: pressure no start slot holds), then
 *                               sleep until killed
 *   labload burst [options]     the container-start burst (see usage())
 *
 * A "container" here is what a container runtime does on start, in the order it does it:
 * create a memory cgroup (mkdir: alloc_shrinker_info takes shrinker_rwsem for write),
 * mount an overlay of several lower layers (alloc_super -> prealloc_shrinker takes it for
 * write), start a process in the cgroup that reads from its root and faults in memory; on
 * exit, umount (unregister_shrinker: write again) and remove the cgroup. A container holds
 * one of the node's slots (pod capacity) until its process exits; the teardown after that
 * runs outside the slot, as a kubelet tears a finished pod down while the next one starts.
 *
 * Times are CLOCK_MONOTONIC microseconds, the clock tracefs uses with trace_clock=mono, so
 * records line up with the shrinker hold/wait events traced in the same guest.
 *
 * Output of burst, one line per container (written with one write(2), < PIPE_BUF):
 *   C <id> <t_request_us> <t_begin_us> <mkcg_us> <mount_us> <start_us> <umount_us> <rmcg_us> <ok>
 * t_request is when the container was eligible (slot free and, when gated, released),
 * t_begin when its start began; start_us runs from t_begin until its process has faulted in
 * its memory (what a pod's "container started" would mean); plus a summary line
 *   B <t_begin_us> <t_end_us> <n>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *what)
{
	fprintf(stderr, "labload: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void mkdir_p(const char *path)
{
	char buf[512];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = 0;
			mkdir(buf, 0755);
			*p = '/';
		}
	}
	if (mkdir(buf, 0755) && errno != EEXIST)
		die(buf);
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int mode_layers(int argc, char **argv)
{
	if (argc < 6)
		return fprintf(stderr, "usage: labload layers DIR L F KB\n"), 2;
	const char *dir = argv[2];
	int layers = atoi(argv[3]), files = atoi(argv[4]), kb = atoi(argv[5]);
	char *block = malloc((size_t)kb * 1024 + 1);
	memset(block, 'x', (size_t)kb * 1024);
	for (int l = 0; l < layers; l++) {
		char path[512];
		snprintf(path, sizeof path, "%s/l%d/usr/lib", dir, l);
		mkdir_p(path);
		for (int f = 0; f < files; f++) {
			snprintf(path, sizeof path, "%s/l%d/usr/lib/f%d", dir, l, f);
			int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd < 0)
				die(path);
			if (write(fd, block, (size_t)kb * 1024) < 0)
				die("write");
			close(fd);
		}
	}
	free(block);
	return 0;
}

static int mode_files(int argc, char **argv)
{
	if (argc < 4)
		return fprintf(stderr, "usage: labload files DIR N\n"), 2;
	const char *dir = argv[2];
	long n = atol(argv[3]);
	char path[512];
	for (long i = 0; i < n; i++) {
		if (i % 1000 == 0) {
			snprintf(path, sizeof path, "%s/d%ld", dir, i / 1000);
			mkdir_p(path);
		}
		snprintf(path, sizeof path, "%s/d%ld/f%ld", dir, i / 1000, i);
		int fd = open(path, O_WRONLY | O_CREAT, 0644);
		if (fd < 0)
			die(path);
		close(fd);
	}
	return 0;
}

/* SReclaimable from /proc/meminfo, MiB (-1 when unreadable). */
static long sreclaimable_mb(void)
{
	char buf[4096];
	int fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	char *p = strstr(buf, "SReclaimable:");
	return p ? atol(p + strlen("SReclaimable:")) / 1024 : -1;
}

/*
 * Negative dentries as fast as the guest can make them: each process does stat() misses in a
 * tight loop, relative to an open directory (one path component to look up) and on names of
 * NAMELEN characters whose counter is bumped in place (no formatting). Names longer than
 * DNAME_INLINE_LEN (32) get a separate kmalloc for the name, charged as reclaimable slab with
 * the dentry and freed with it, so each dentry costs ~2-4x the memory and the fill reaches its
 * size with fewer syscalls. All land in the root memory cgroup's dentry list of one
 * superblock: one long list for the superblock shrinker. Stops after N misses in all, or once
 * SReclaimable reaches SLAB_MB (0: no target).
 */
static void negdent_worker(int dfd, long n, int seed, int namelen, long slab_mb)
{
	char name[256];
	memset(name, 'n', (size_t)namelen);
	name[namelen] = 0;
	name[0] = (char)('a' + seed % 26);
	name[1] = (char)('a' + seed / 26 % 26);
	memset(name + namelen - 12, '0', 12); /* a 12-digit counter at the end of the name */
	struct stat st;
	for (long i = 0; i < n; i++) {
		int d = namelen - 1;
		while (name[d] == '9')
			name[d--] = '0';
		name[d]++;
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		if (slab_mb > 0 && (i & 16383) == 16383 && sreclaimable_mb() >= slab_mb)
			break;
	}
}

static int mode_negdent(int argc, char **argv)
{
	if (argc < 7)
		return fprintf(stderr, "usage: labload negdent DIR N PROCS NAMELEN SLAB_MB\n"), 2;
	const char *dir = argv[2];
	long n = atol(argv[3]), slab_mb = atol(argv[6]);
	int procs = atoi(argv[4]), namelen = atoi(argv[5]);
	if (procs < 1 || procs > 64 || namelen < 16 || namelen > 255)
		return fprintf(stderr, "labload negdent: PROCS 1-64, NAMELEN 16-255\n"), 2;
	mkdir_p(dir);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		die(dir);
	for (int p = 0; p < procs; p++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			negdent_worker(dfd, n / procs, p, namelen, slab_mb);
			_exit(0);
		}
	}
	int status, failed = 0;
	while (wait(&status) > 0)
		failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return failed ? 1 : 0;
}

static void touch_anon(long mb)
{
	size_t len = (size_t)mb << 20;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	for (size_t off = 0; off < len; off += 4096)
		p[off] = 1;
}

static int mode_hog(int argc, char **argv)
{
	if (argc < 3)
		return fprintf(stderr, "usage: labload hog MB\n"), 2;
	touch_anon(atol(argv[2]));
	printf("hog ready\n");
	fflush(stdout);
	for (;;)
		pause();
}

static int mode_grow(int argc, char **argv)
{
	if (argc < 4)
		return fprintf(stderr, "usage: labload grow MB RATE_MB_PER_S\n"), 2;
	long mb = atol(argv[2]);
	double rate = atof(argv[3]);
	if (mb <= 0 || rate <= 0)
		return fprintf(stderr, "labload grow: MB and RATE must be positive\n"), 2;
	size_t len = (size_t)mb << 20;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	int64_t t0 = now_us();
	for (size_t off = 0; off < len; off += 4096) {
		if ((off & ((1 << 20) - 1)) == 0) { /* each MiB on its schedule */
			int64_t due = t0 + (int64_t)((double)(off >> 20) * 1e6 / rate);
			int64_t wait = due - now_us();
			if (wait > 0)
				usleep((useconds_t)wait);
		}
		p[off] = 1;
	}
	printf("grow done %lld us\n", (long long)(now_us() - t0));
	fflush(stdout);
	for (;;)
		pause();
}

struct burst {
	int n, slots, mb, small_mb, hold_ms, layers;
	const char *layer_dir, *work_dir, *cg_parent, *gate, *started, *out;
};

static void usage(void)
{
	fprintf(stderr,
		"usage: labload burst -n N -P SLOTS -m MB [-M SMALL_MB] -t HOLD_MS -l LAYERS -L LAYER_DIR\n"
		"                     -w WORK_DIR -c CGROUP_PARENT -o OUT [-g GATE_FIFO] [-s STARTED_FIFO]\n"
		"  -M: every second container faults in SMALL_MB instead (default: all MB)\n"
		"  -g: read one byte from GATE_FIFO before each start (the pacer releases it)\n"
		"  -s: write one byte to STARTED_FIFO when a container's process has started\n");
	exit(2);
}

/* One container's life; runs in its own process, returns its exit status. */
static int run_container(const struct burst *b, int id, int64_t t_request, int out_fd,
			 int started_fd, int slot_fd)
{
	char cg[512], base[512], upper[600], work[600], merged[600], opts[4096], path[700];
	int64_t t0 = now_us();
	snprintf(cg, sizeof cg, "%s/c%d", b->cg_parent, id);
	if (mkdir(cg, 0755) && errno != EEXIST)
		die(cg);
	int64_t t_cg = now_us();

	snprintf(base, sizeof base, "%s/c%d", b->work_dir, id);
	snprintf(upper, sizeof upper, "%s/upper", base);
	snprintf(work, sizeof work, "%s/work", base);
	snprintf(merged, sizeof merged, "%s/merged", base);
	mkdir_p(upper);
	mkdir_p(work);
	mkdir_p(merged);
	int len = snprintf(opts, sizeof opts, "lowerdir=");
	for (int l = b->layers - 1; l >= 0; l--)
		len += snprintf(opts + len, sizeof opts - (size_t)len, "%s%s/l%d",
				l == b->layers - 1 ? "" : ":", b->layer_dir, l);
	snprintf(opts + len, sizeof opts - (size_t)len, ",upperdir=%s,workdir=%s", upper, work);

	int64_t t_m0 = now_us();
	int ok = mount("overlay", merged, "overlay", 0, opts) == 0;
	int64_t t_m1 = now_us();
	if (!ok)
		fprintf(stderr, "labload: mount c%d: %s\n", id, strerror(errno));

	int pfd[2];
	if (pipe(pfd))
		die("pipe");
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		snprintf(path, sizeof path, "%s/cgroup.procs", cg);
		write_file(path, "0");
		if (ok && chdir(merged) == 0) {
			/* read the image: one file from every layer (page cache, dentries) */
			char buf[4096];
			for (int l = 0; l < b->layers; l++) {
				snprintf(path, sizeof path, "usr/lib/f%d", l);
				int fd = open(path, O_RDONLY);
				if (fd >= 0) {
					while (read(fd, buf, sizeof buf) > 0)
						;
					close(fd);
				}
			}
			int fd = open("started", O_WRONLY | O_CREAT, 0644); /* copy-up to upper */
			if (fd >= 0)
				close(fd);
		}
		touch_anon(id % 2 && b->small_mb >= 0 ? b->small_mb : b->mb);
		if (write(pfd[1], "s", 1) != 1)
			_exit(3);
		close(pfd[1]);
		usleep((useconds_t)b->hold_ms * 1000);
		_exit(0);
	}
	close(pfd[1]);
	char c;
	int started = read(pfd[0], &c, 1) == 1;
	int64_t t_started = now_us();
	close(pfd[0]);
	if (started_fd >= 0 && write(started_fd, "s", 1) != 1)
		fprintf(stderr, "labload: started fifo: %s\n", strerror(errno));
	int status;
	waitpid(pid, &status, 0);
	/* the process has exited: free the slot, then tear down (id: < PIPE_BUF, atomic) */
	if (write(slot_fd, &id, sizeof id) != sizeof id)
		fprintf(stderr, "labload: slot pipe: %s\n", strerror(errno));

	int64_t t_u0 = now_us();
	if (ok && umount2(merged, 0))
		fprintf(stderr, "labload: umount c%d: %s\n", id, strerror(errno));
	int64_t t_u1 = now_us();
	if (rmdir(cg))
		fprintf(stderr, "labload: rmdir %s: %s\n", cg, strerror(errno));
	int64_t t_rm = now_us();
	snprintf(path, sizeof path, "rm -rf %s", base);
	if (system(path) != 0)
		fprintf(stderr, "labload: cleanup c%d failed\n", id);

	char line[256];
	int n = snprintf(line, sizeof line, "C %d %lld %lld %lld %lld %lld %lld %lld %d\n", id,
			 (long long)t_request, (long long)t0, (long long)(t_cg - t0),
			 (long long)(t_m1 - t_m0), (long long)(t_started - t0),
			 (long long)(t_u1 - t_u0), (long long)(t_rm - t_u1), ok && started);
	if (write(out_fd, line, (size_t)n) != n)
		die("write out");
	return ok && started ? 0 : 1;
}

static int mode_burst(int argc, char **argv)
{
	struct burst b = {.n = 100, .slots = 8, .mb = 32, .small_mb = -1, .hold_ms = 500, .layers = 4};
	int opt;
	optind = 2;
	while ((opt = getopt(argc, argv, "n:P:m:M:t:l:L:w:c:o:g:s:")) != -1) {
		switch (opt) {
		case 'n': b.n = atoi(optarg); break;
		case 'P': b.slots = atoi(optarg); break;
		case 'm': b.mb = atoi(optarg); break;
		case 'M': b.small_mb = atoi(optarg); break;
		case 't': b.hold_ms = atoi(optarg); break;
		case 'l': b.layers = atoi(optarg); break;
		case 'L': b.layer_dir = optarg; break;
		case 'w': b.work_dir = optarg; break;
		case 'c': b.cg_parent = optarg; break;
		case 'o': b.out = optarg; break;
		case 'g': b.gate = optarg; break;
		case 's': b.started = optarg; break;
		default: usage();
		}
	}
	if (!b.layer_dir || !b.work_dir || !b.cg_parent || !b.out || b.slots < 1)
		usage();
	int out_fd = open(b.out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (out_fd < 0)
		die(b.out);
	/* open the fifos before the first start: the pacer opens the other ends */
	int gate_fd = b.gate ? open(b.gate, O_RDONLY) : -1;
	int started_fd = b.started ? open(b.started, O_WRONLY) : -1;
	if ((b.gate && gate_fd < 0) || (b.started && started_fd < 0))
		die("fifo");
	signal(SIGPIPE, SIG_IGN);

	/* a slot frees when a container's process exits (its id on slot_pipe) or, if it died
	 * before that, when the container is reaped: freed[] keeps one slot from freeing twice */
	int slot_pipe[2];
	if (pipe(slot_pipe))
		die("pipe");
	pid_t *pids = calloc((size_t)b.n, sizeof *pids);
	char *freed = calloc((size_t)b.n, 1);
	if (!pids || !freed)
		die("calloc");
	int64_t t_begin = now_us();
	int inflight = 0, failed = 0;
	for (int i = 0; i < b.n; i++) {
		for (;;) {
			int status;
			pid_t done;
			while ((done = waitpid(-1, &status, WNOHANG)) > 0) {
				failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
				for (int j = 0; j < i; j++)
					if (pids[j] == done && !freed[j]) {
						freed[j] = 1;
						inflight--;
					}
			}
			if (inflight < b.slots)
				break;
			struct pollfd pfd = {.fd = slot_pipe[0], .events = POLLIN};
			int id;
			if (poll(&pfd, 1, 100) > 0 &&
			    read(slot_pipe[0], &id, sizeof id) == sizeof id && id >= 0 && id < i &&
			    !freed[id]) {
				freed[id] = 1;
				inflight--;
			}
		}
		if (gate_fd >= 0) {
			char c;
			if (read(gate_fd, &c, 1) != 1) {
				fprintf(stderr, "labload: gate closed after %d starts\n", i);
				break;
			}
		}
		int64_t t_request = now_us();
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			close(slot_pipe[0]);
			_exit(run_container(&b, i, t_request, out_fd, started_fd, slot_pipe[1]));
		}
		pids[i] = pid;
		inflight++;
	}
	int status;
	while (wait(&status) > 0)
		failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	int64_t t_end = now_us();
	char line[128];
	int n = snprintf(line, sizeof line, "B %lld %lld %d %d\n", (long long)t_begin,
			 (long long)t_end, b.n, failed);
	if (write(out_fd, line, (size_t)n) != n)
		die("write out");
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: labload layers|files|negdent|hog|grow|burst ...\n");
		return 2;
	}
	if (!strcmp(argv[1], "layers"))
		return mode_layers(argc, argv);
	if (!strcmp(argv[1], "files"))
		return mode_files(argc, argv);
	if (!strcmp(argv[1], "negdent"))
		return mode_negdent(argc, argv);
	if (!strcmp(argv[1], "hog"))
		return mode_hog(argc, argv);
	if (!strcmp(argv[1], "grow"))
		return mode_grow(argc, argv);
	if (!strcmp(argv[1], "burst"))
		return mode_burst(argc, argv);
	fprintf(stderr, "labload: unknown mode %s\n", argv[1]);
	return 2;
}
