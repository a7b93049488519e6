/*
 * workload: the container of burstguard's real-node bursts (image localhost/burstguard/workload).
 *
 *   workload MIB SECONDS [DIR]
 *
 * Prints one line with the host's /proc/uptime at start (the same clock on the host and in
 * every container), reads every regular file in DIR (default /data, shipped in the image's
 * layers, so the start touches the overlay and the page cache), faults in MIB MiB of anonymous
 * memory (one write per page), holds it SECONDS seconds and exits 0. Static (gcc -static): the
 * image holds nothing else.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char up[64] = "?";
	int fd = open("/proc/uptime", O_RDONLY);
	if (fd >= 0) {
		ssize_t n = read(fd, up, sizeof up - 1);
		up[n > 0 ? n : 0] = 0;
		close(fd);
		char *sp = strchr(up, ' ');
		if (sp)
			*sp = 0;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: workload MIB SECONDS [DIR]\n");
		return 2;
	}
	long mib = atol(argv[1]), secs = atol(argv[2]);
	const char *dir = argc > 3 ? argv[3] : "/data";
	long long read_bytes = 0;
	static char buf[1 << 16];
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char path[4096];
			snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
			int f = open(path, O_RDONLY);
			if (f < 0)
				continue;
			ssize_t n;
			while ((n = read(f, buf, sizeof buf)) > 0)
				read_bytes += n;
			close(f);
		}
		closedir(d);
	}
	long page = sysconf(_SC_PAGESIZE);
	size_t size = (size_t)mib << 20;
	char *mem = size ? malloc(size) : NULL;
	if (size && !mem) {
		fprintf(stderr, "workload: cannot allocate %ld MiB\n", mib);
		return 1;
	}
	for (size_t i = 0; i < size; i += (size_t)page)
		mem[i] = 1;
	printf("workload start_uptime_s=%s read_bytes=%lld faulted_mib=%ld hold_s=%ld\n", up,
	       read_bytes, mib, secs);
	fflush(stdout);
	sleep((unsigned)secs);
	return 0;
}
