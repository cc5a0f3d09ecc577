/* peer: a C end of a ring for ring_test.go, on ring/c/shmring.h.
 *
 *   peer write NAME COUNT SEED   send COUNT messages of the stream SEED, then close
 *   peer read NAME COUNT SEED    receive and verify them, then expect the end of stream
 *   peer hold-writer NAME        claim the writing end, say "ready", wait for death
 *   peer hold-reader NAME        claim the reading end, say "ready", wait for death
 *   peer recv-wait NAME [alarm]  claim the reader, say "ready", receive until an error; print its errno name
 *   peer send-wait NAME [alarm]  claim the writer, say "ready", send until an error; print its errno name
 *                                (alarm: take a SIGALRM every 100 ms, SA_RESTART handler that says "alarm";
 *                                print how many at the end)
 *   peer fork-writer NAME        claim the writer, send "p0", fork; the child tries to send "c", claim,
 *                                and receive, reports the errno names to the parent, then lives on idle
 *                                (stdout and stderr on /dev/null); the parent sends "p1", prints
 *                                "ready child PID SEND CLAIM RECV" and waits for death
 *   peer try-send NAME [guard] [wait]  claim the writer, send up to 8 messages (20 ms timeout each), print
 *   peer try-recv NAME [guard] [wait]  "RESULT COUNT": the first error's errno name, or OK, and how many went
 *                                (guard: remap the ring with an inaccessible page right after the object;
 *                                wait: once claimed, print "ready SLOT" and wait for a line on stdin)
 *   peer try-send-batch NAME [guard], peer try-recv-batch NAME [guard]: the same 8 messages through
 *                                shmring_send_batch and shmring_recv_batch (as many per call as go)
 *   peer batch-write NAME COUNT SEED BATCH  as write, with shmring_send_batch of up to BATCH messages;
 *   peer batch-read NAME COUNT SEED BATCH   as read, with shmring_recv_batch; both print
 *                                "ok COUNT BYTES calls=C publishes=P wakes=W" (the handle's counters)
 *   peer wait-peer NAME reader|writer  claim that end, say "ready", shmring_wait_peer (10 s),
 *                                print "peer" or the errno name
 *   peer batch-nobody NAME       (R > 1, no reader) claim the writer, shmring_send_batch 1000 8-byte messages
 *                                (timeout 0), join a reader, send 1000 more, receive; print
 *                                "SENT1 SENT2 RECEIVED RESULT"
 *   peer idle-wait NAME MS       claim a writer that sends nothing and a reader that waits MS for it;
 *                                print "RESULT ms=ELAPSED cpu=CPU_MS"
 *   peer echo IN OUT SPIN_NS     read IN, write each message back to OUT, until IN ends; spin SPIN_NS
 *   peer bench-read NAME SIZE COUNT    claim the reader, say "ready", receive COUNT messages, say "done"
 *   peer bench-write NAME SIZE COUNT   claim the writer, say "ready", wait for a line on stdin,
 *                                      send COUNT messages of SIZE bytes, close, say "done"
 *   peer bench-read|bench-write NAME SIZE COUNT BATCH  the same through shmring_recv_batch and
 *                                      shmring_send_batch of up to BATCH messages
 *                                before sleeping; say "ready" once both ends are claimed
 *
 * Version 2 (many writers, many readers):
 *   peer create-with NAME CAP R W    create a ring of R readers and W writers, print "ok" (or the errno name)
 *   peer open NAME                   open it, print "OK" or the errno name
 *   peer stat NAME                   print shmring_stat as one line of JSON (or "ERR errno-name")
 *   peer stat NAME N                 call shmring_stat N times, print "stats ok=K eagain=E other=O
 *                                    mostused=U" (the first other error on stderr)
 *   peer claim NAME reader|writer    wait for a line on stdin, claim a slot, print "ready SLOT" and wait
 *                                    for death, or print the errno name and exit
 *   peer seq-write NAME ID COUNT [pause=K] [report] [mix] [maxlen=N] [stall=MS] [hold]
 *       claim a writer, print "ready SLOT", send COUNT messages of the sequenced stream ID (below), print
 *       "ok SLOT COUNT maxsend_ms=M" and close (hold: print it and wait for death instead). pause=K:
 *       after K messages print "paused K" and wait for a line on stdin. report: when a send has not
 *       finished within 100 ms, print "blocked SEQ", and "unblocked SEQ" when it has (once). mix: every
 *       third message through shmring_reserve/commit, every fifth batch of up to 4 through
 *       shmring_send_batch. stall=MS: exit 1 if a send takes longer. A send's error: print "error
 *       ERRNAME SEQ" and exit 0.
 *   peer seq-read NAME [from0] [mix] [count=N] [hold]
 *       claim a reader, print "ready SLOT", receive and check messages of sequenced streams until an
 *       error (or N messages: then print "held TOTAL" and wait for death if hold, else close): each
 *       message whole, each stream's numbers consecutive (from 0 if from0); then print "end ERRNAME
 *       total=T ids=ID:FIRST:LAST,..." (ids in order of appearance). mix: every third call through
 *       shmring_next/release, every fifth through shmring_recv_batch. A bad message: exit 1.
 *   peer hold-reserve NAME ID K      claim a writer, send K messages of stream ID, reserve message K and
 *                                    fill it, print "ready SLOT" and wait for death (never committing)
 *
 * The sequenced stream ID: message SEQ is 16 bytes (u32 ID, u32 length, u64 SEQ) and bytes derived from
 * (ID, SEQ) up to its length, 16 to maxlen (default min(max_message, 300)), every 61st max_message.
 *
 * The stream (as in ring_test.go): message i's length is 0 for i == 0, the
 * ring's max for i == 1, else from a xorshift32 of the seed, half of them
 * under 64 bytes; its bytes are pat[p % PATN ...] at stream position p,
 * pat from a xorshift64* of the seed.
 */
#include "../c/shmring.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>

#define PATN ((1 << 20) + 4093)

static unsigned char *pat;
static uint32_t y;

static void pattern(uint64_t seed, size_t ext) {
	pat = malloc(PATN + ext);
	uint64_t x = 2 * seed + 1;
	for (int i = 0; i < PATN; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		pat[i] = (unsigned char)((x * 0x2545F4914F6CDD1DULL) >> 56);
	}
	memcpy(pat + PATN, pat, ext);
}

static size_t next_len(uint64_t i, size_t max) {
	y ^= y << 13;
	y ^= y >> 17;
	y ^= y << 5;
	if (i == 0)
		return 0;
	if (i == 1)
		return max;
	if (y & 1)
		return (y >> 1) % 64 < max ? (y >> 1) % 64 : max;
	return (y >> 1) % (max + 1);
}

static const char *errname(int e) {
	switch (e) {
	case EPIPE: return "EPIPE";
	case EOWNERDEAD: return "EOWNERDEAD";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EMSGSIZE: return "EMSGSIZE";
	case EBUSY: return "EBUSY";
	case EPROTO: return "EPROTO";
	case ECHILD: return "ECHILD";
	case EINVAL: return "EINVAL";
	}
	return strerror(e);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig) {
	(void)sig;
	alarms++;
	if (write(1, "alarm\n", 6) != 6) /* the test counts them */
		_exit(3);
}

/* alarm_every_100ms: an ordinary watchdog, as issue 21 item 2 found it. */
static void alarm_every_100ms(void) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = {{0, 100000}, {0, 100000}};
	setitimer(ITIMER_REAL, &it, NULL);
}

/* guard_page maps r again with an inaccessible page right after the
 * object, so that any access past it (past the data, when the object is
 * header_size + writers * capacity bytes and that is a multiple of the
 * page) faults. */
static int guard_page(shmring *r) {
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	if (r->size % page) {
		fprintf(stderr, "peer: guard: the object's %zu bytes are not whole pages\n", r->size);
		return -1;
	}
	unsigned char *p = mmap(NULL, r->size + page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || mmap(p, r->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, r->fd, 0) == MAP_FAILED) {
		perror("peer: guard");
		return -1;
	}
	munmap(r->base, r->size);
	shmring__setbase(r, p);
	return 0;
}

static int fail(const char *what) {
	fprintf(stderr, "peer: %s: %s\n", what, errname(errno));
	return 1;
}

/* The sequenced streams of the version-2 modes. */
static uint32_t seq_hash(uint32_t id, uint64_t seq) {
	uint32_t h = id * 0x9E3779B1u ^ (uint32_t)(seq * 0x85EBCA6Bull) ^ (uint32_t)(seq >> 32);
	h ^= h >> 15;
	h *= 0x2C1B3C6Du;
	h ^= h >> 12;
	return h;
}

static size_t seq_len(uint32_t id, uint64_t seq, size_t maxlen, size_t max) {
	if (seq % 61 == 60)
		return max;
	return 16 + seq_hash(id, seq) % (maxlen - 15);
}

static void seq_fill(unsigned char *b, uint32_t id, uint64_t seq, size_t n) {
	uint32_t n32 = (uint32_t)n, h = seq_hash(id, seq);
	memcpy(b, &id, 4);
	memcpy(b + 4, &n32, 4);
	memcpy(b + 8, &seq, 8);
	for (size_t k = 16; k < n; k++)
		b[k] = (unsigned char)(h + k * 31);
}

/* seq_check: 0 if b (n bytes) is a whole message of its stream. */
static int seq_check(const unsigned char *b, size_t n, uint32_t *id, uint64_t *seq) {
	uint32_t n32;
	if (n < 16) {
		fprintf(stderr, "peer: a message of %zu bytes\n", n);
		return -1;
	}
	memcpy(id, b, 4);
	memcpy(&n32, b + 4, 4);
	memcpy(seq, b + 8, 8);
	if (n32 != n) {
		fprintf(stderr, "peer: stream %u message %llu: length %zu, it says %u\n", *id, (unsigned long long)*seq, n, n32);
		return -1;
	}
	uint32_t h = seq_hash(*id, *seq);
	for (size_t k = 16; k < n; k++)
		if (b[k] != (unsigned char)(h + k * 31)) {
			fprintf(stderr, "peer: stream %u message %llu: wrong byte at %zu (torn)\n", *id, (unsigned long long)*seq, k);
			return -1;
		}
	return 0;
}

static const char *state_name(int s) {
	switch (s) {
	case SHMRING_SLOT_NEVER: return "never";
	case SHMRING_SLOT_OPEN: return "open";
	case SHMRING_SLOT_CLOSED: return "closed";
	case SHMRING_SLOT_DEAD: return "dead";
	}
	return "?";
}

static void wait_line(void) {
	char line[16];
	if (!fgets(line, sizeof line, stdin))
		exit(3);
}

static void ready_slot(shmring *r) {
	printf("ready %d\n", shmring_slot(r));
	fflush(stdout);
}

static int has_opt(int argc, char **argv, int from, const char *opt) {
	for (int i = from; i < argc; i++)
		if (!strcmp(argv[i], opt))
			return 1;
	return 0;
}

static long opt_num(int argc, char **argv, int from, const char *opt, long def) {
	size_t l = strlen(opt);
	for (int i = from; i < argc; i++)
		if (!strncmp(argv[i], opt, l) && argv[i][l] == '=')
			return atol(argv[i] + l + 1);
	return def;
}

struct seen {
	uint32_t id;
	uint64_t first, last;
};

static int v2_main(int argc, char **argv) {
	const char *mode = argv[1];
	if (!strcmp(mode, "create-with") && argc == 6) {
		shmring *r = shmring_create_with(argv[2], strtoull(argv[3], NULL, 10), atoi(argv[4]), atoi(argv[5]));
		printf("%s\n", r ? "ok" : errname(errno));
		shmring_close(r);
		return 0;
	}
	shmring *r = shmring_open(argv[2]);
	if (!strcmp(mode, "open")) {
		printf("%s\n", r ? "OK" : errname(errno));
		shmring_close(r);
		return 0;
	}
	if (!r)
		return fail("open");
	if (!strcmp(mode, "stat") && argc == 4) { /* N stats: how they went */
		struct shmring_stat st;
		long n = atol(argv[3]), ok = 0, again = 0, other = 0;
		uint64_t most = 0;
		for (long i = 0; i < n; i++) {
			if (shmring_stat(r, &st) == 0) {
				ok++;
				if (st.used > most)
					most = st.used;
			} else if (errno == EAGAIN) {
				again++;
			} else {
				if (!other)
					fprintf(stderr, "peer: stat %ld: %s\n", i, errname(errno));
				other++;
			}
		}
		printf("stats ok=%ld eagain=%ld other=%ld mostused=%llu\n", ok, again, other, (unsigned long long)most);
		shmring_close(r);
		return 0;
	}
	if (!strcmp(mode, "stat")) {
		struct shmring_stat st;
		if (shmring_stat(r, &st) < 0) {
			printf("ERR %s\n", errname(errno));
			return 0;
		}
		printf("{\"capacity\":%llu,\"max_message\":%llu,\"messages\":%llu,\"bytes\":%llu,\"used\":%llu,\"readers\":%d,\"writers\":%d",
		       (unsigned long long)st.capacity, (unsigned long long)st.max_message, (unsigned long long)st.messages,
		       (unsigned long long)st.bytes, (unsigned long long)st.used, st.readers, st.writers);
		for (int k = 0; k < 2; k++) {
			printf(",\"%s\":[", k ? "writer" : "reader");
			int n = k ? st.writers : st.readers;
			for (int i = 0; i < n; i++)
				printf("%s{\"state\":\"%s\",\"pid\":%u}", i ? "," : "", state_name(k ? st.writer_state[i] : st.reader_state[i]),
				       k ? st.writer_pid[i] : st.reader_pid[i]);
			printf("]");
		}
		printf("}\n");
		shmring_close(r);
		return 0;
	}
	if (!strcmp(mode, "claim") && argc == 4) {
		wait_line();
		if ((!strcmp(argv[3], "writer") ? shmring_writer(r) : shmring_reader(r)) < 0) {
			printf("%s\n", errname(errno));
			return 0;
		}
		ready_slot(r);
		for (;;)
			pause();
	}
	size_t max = shmring_max_message(r);
	if (!strcmp(mode, "hold-reserve") && argc == 5) {
		uint32_t id = (uint32_t)atol(argv[3]);
		long k = atol(argv[4]);
		size_t maxlen = max < 300 ? max : 300;
		unsigned char *buf = malloc(max);
		if (shmring_writer(r) < 0)
			return fail("writer");
		for (long i = 0; i < k; i++) {
			size_t n = seq_len(id, (uint64_t)i, maxlen, max);
			seq_fill(buf, id, (uint64_t)i, n);
			if (shmring_send(r, buf, n, 10000) < 0)
				return fail("send");
		}
		size_t n = seq_len(id, (uint64_t)k, maxlen, max);
		unsigned char *p = shmring_reserve(r, n, 10000);
		if (!p)
			return fail("reserve");
		seq_fill(p, id, (uint64_t)k, n);
		ready_slot(r);
		for (;;)
			pause();
	}
	if (!strcmp(mode, "seq-write") && argc >= 5) {
		uint32_t id = (uint32_t)atol(argv[3]);
		uint64_t count = strtoull(argv[4], NULL, 10);
		long pause_at = opt_num(argc, argv, 5, "pause", -1), stall = opt_num(argc, argv, 5, "stall", 0);
		int report = has_opt(argc, argv, 5, "report"), mix = has_opt(argc, argv, 5, "mix");
		size_t maxlen = (size_t)opt_num(argc, argv, 5, "maxlen", max < 300 ? (long)max : 300);
		if (maxlen > max || maxlen < 16)
			maxlen = max;
		unsigned char *buf = malloc(4 * max);
		if (shmring_writer(r) < 0)
			return fail("writer");
		ready_slot(r);
		int64_t maxsend = 0;
		int reported = 0;
		for (uint64_t i = 0; i < count || (long)i == pause_at;) {
			if ((long)i == pause_at) {
				printf("paused %ld\n", pause_at);
				fflush(stdout);
				wait_line();
				pause_at = -1;
				if (i == count)
					break;
			}
			int64_t t0 = shmring__now_ns();
			int blocked = 0, rc, sent = 1;
			for (;;) {
				int to = report && !reported ? 100 : 10000;
				size_t n = seq_len(id, i, maxlen, max);
				if (mix && i % 3 == 2) {
					unsigned char *p = shmring_reserve(r, n, to);
					rc = p ? 0 : -1;
					if (p) {
						seq_fill(p, id, i, n);
						rc = shmring_commit(r, n);
					}
				} else if (mix && i % 5 == 0) {
					struct iovec iov[4];
					int want = 0;
					for (uint64_t j = i; j < count && want < 4 && (j == i || j % 3 != 2); j++, want++) {
						size_t nj = seq_len(id, j, maxlen, max);
						seq_fill(buf + (size_t)want * max, id, j, nj);
						iov[want].iov_base = buf + (size_t)want * max;
						iov[want].iov_len = nj;
					}
					rc = shmring_send_batch(r, iov, want, to);
					if (rc > 0)
						sent = rc, rc = 0;
				} else {
					seq_fill(buf, id, i, n);
					rc = shmring_send(r, buf, n, to);
				}
				if (rc == 0)
					break;
				if (errno == ETIMEDOUT && to == 100) {
					printf("blocked %llu\n", (unsigned long long)i);
					fflush(stdout);
					blocked = reported = 1;
					continue;
				}
				printf("error %s %llu\n", errname(errno), (unsigned long long)i);
				return 0;
			}
			if (blocked) {
				printf("unblocked %llu\n", (unsigned long long)i);
				fflush(stdout);
			}
			int64_t d = shmring__now_ns() - t0;
			if (d > maxsend)
				maxsend = d;
			if (stall > 0 && d > stall * 1000000) {
				fprintf(stderr, "peer: stream %u message %llu: a send took %lld ms\n", id, (unsigned long long)i, (long long)(d / 1000000));
				return 1;
			}
			i += (uint64_t)sent;
		}
		printf("ok %d %llu maxsend_ms=%lld\n", shmring_slot(r), (unsigned long long)count, (long long)(maxsend / 1000000));
		fflush(stdout);
		if (has_opt(argc, argv, 5, "hold"))
			for (;;)
				pause();
		shmring_close(r);
		return 0;
	}
	if (!strcmp(mode, "seq-read")) {
		int from0 = has_opt(argc, argv, 3, "from0"), mix = has_opt(argc, argv, 3, "mix");
		long count = opt_num(argc, argv, 3, "count", -1);
		if (shmring_reader(r) < 0)
			return fail("reader");
		ready_slot(r);
		struct seen *ids = NULL;
		size_t nids = 0;
		uint64_t total = 0;
		struct iovec iov[4];
		size_t lens[4];
		unsigned char *bufs = malloc(4 * (max + 1));
		for (int j = 0; j < 4; j++) {
			iov[j].iov_base = bufs + (size_t)j * (max + 1);
			iov[j].iov_len = max + 1;
		}
		int err = 0;
		for (long call = 0; count < 0 || (long)total < count; call++) {
			const unsigned char *msg[4];
			size_t got[4];
			int k = 1, next = 0;
			if (mix && call % 3 == 2) {
				const void *m;
				ssize_t n = shmring_next(r, &m, -1);
				if (n < 0) {
					err = errno;
					break;
				}
				msg[0] = m;
				got[0] = (size_t)n;
				next = 1;
			} else if (mix && call % 5 == 0) {
				int want = count < 0 || count - (long)total >= 4 ? 4 : (int)(count - (long)total);
				k = shmring_recv_batch(r, iov, lens, want, -1);
				if (k <= 0) {
					err = errno;
					break;
				}
				for (int j = 0; j < k; j++)
					msg[j] = iov[j].iov_base, got[j] = lens[j];
			} else {
				ssize_t n = shmring_recv(r, iov[0].iov_base, max + 1, -1);
				if (n < 0) {
					err = errno;
					break;
				}
				msg[0] = iov[0].iov_base;
				got[0] = (size_t)n;
			}
			for (int j = 0; j < k; j++) {
				uint32_t id;
				uint64_t seq;
				if (seq_check(msg[j], got[j], &id, &seq) < 0)
					return 1;
				size_t x;
				for (x = 0; x < nids && ids[x].id != id; x++)
					;
				if (x == nids) {
					if (from0 && seq != 0) {
						fprintf(stderr, "peer: stream %u starts at message %llu, want 0\n", id, (unsigned long long)seq);
						return 1;
					}
					ids = realloc(ids, (nids + 1) * sizeof *ids);
					ids[nids++] = (struct seen){id, seq, seq};
				} else {
					if (seq != ids[x].last + 1) {
						fprintf(stderr, "peer: stream %u: message %llu after %llu\n", id, (unsigned long long)seq, (unsigned long long)ids[x].last);
						return 1;
					}
					ids[x].last = seq;
				}
				total++;
			}
			if (next && shmring_release(r) < 0)
				return fail("release");
		}
		if (count >= 0 && (long)total >= count) {
			printf("held %llu\n", (unsigned long long)total);
			fflush(stdout);
			if (has_opt(argc, argv, 3, "hold"))
				for (;;)
					pause();
			shmring_close(r);
			return 0;
		}
		printf("end %s total=%llu ids=", errname(err), (unsigned long long)total);
		for (size_t x = 0; x < nids; x++)
			printf("%s%u:%llu:%llu", x ? "," : "", ids[x].id, (unsigned long long)ids[x].first, (unsigned long long)ids[x].last);
		printf("\n");
		shmring_close(r);
		return 0;
	}
	if (!strcmp(mode, "batch-nobody") && argc == 3) {
		/* claim a writer where no reader holds (R > 1), send a batch of
		 * 1000 8-byte messages (numbered) without waiting, then join a
		 * reader, send another, and receive what came; prints
		 * "SENT1 SENT2 RECEIVED RESULT" (OK, or the errno name) */
		if (shmring_writer(r) < 0)
			return fail("claim");
		static struct iovec iov[1000];
		static uint64_t msg[2000];
		for (int i = 0; i < 2000; i++)
			msg[i] = (uint64_t)i;
		for (int i = 0; i < 1000; i++)
			iov[i] = (struct iovec){msg + i, 8};
		int n1 = shmring_send_batch(r, iov, 1000, 0);
		if (n1 < 0)
			return fail("send_batch");
		shmring *rd = shmring_open(argv[2]);
		if (!rd || shmring_reader(rd) < 0)
			return fail("reader");
		for (int i = 0; i < 1000; i++)
			iov[i] = (struct iovec){msg + n1 + i, 8};
		int n2 = shmring_send_batch(r, iov, 1000, 0);
		if (n2 < 0)
			return fail("send_batch");
		int got = 0;
		const char *res = "OK";
		for (;;) {
			uint64_t v;
			ssize_t n = shmring_recv(rd, &v, sizeof v, 0);
			if (n < 0) {
				if (errno != ETIMEDOUT)
					res = errname(errno);
				break;
			}
			if (n != 8 || v != (uint64_t)(n1 + got)) {
				res = "WRONG";
				break;
			}
			got++;
		}
		printf("%d %d %d %s\n", n1, n2, got, res);
		shmring_close(rd);
		shmring_close(r);
		return 0;
	}
	if (!strcmp(mode, "idle-wait") && argc == 4) {
		/* a reader waits MS for a live writer that sends nothing;
		 * prints "RESULT ms=ELAPSED cpu=CPU_MS" */
		shmring *w = shmring_open(argv[2]);
		if (!w || shmring_writer(w) < 0 || shmring_reader(r) < 0)
			return fail("claim");
		char buf[64];
		int64_t t0 = shmring__now_ns();
		ssize_t n = shmring_recv(r, buf, sizeof buf, atoi(argv[3]));
		int64_t ms = (shmring__now_ns() - t0) / 1000000;
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		long cpu = (long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 + (long)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
		printf("%s ms=%lld cpu=%ld\n", n < 0 ? errname(errno) : "OK", (long long)ms, cpu);
		shmring_close(w);
		shmring_close(r);
		return 0;
	}
	shmring_close(r); /* not a version-2 mode: main opens it again */
	return -1;
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: peer write|read NAME COUNT SEED | hold-writer|hold-reader|recv-wait|send-wait NAME\n");
		return 2;
	}
	int v2 = v2_main(argc, argv);
	if (v2 >= 0)
		return v2;
	shmring *r = shmring_open(argv[2]);
	if (!r)
		return fail("open");
	const char *mode = argv[1];
	if (!strcmp(mode, "hold-writer") || !strcmp(mode, "hold-reader")) {
		if ((mode[5] == 'w' ? shmring_writer(r) : shmring_reader(r)) < 0)
			return fail("claim");
		printf("ready\n");
		fflush(stdout);
		for (;;)
			pause();
	}
	if (!strcmp(mode, "recv-wait") || !strcmp(mode, "send-wait")) {
		int rd = mode[0] == 'r', alarm = argc > 3 && !strcmp(argv[3], "alarm");
		if ((rd ? shmring_reader(r) : shmring_writer(r)) < 0)
			return fail("claim");
		printf("ready\n");
		fflush(stdout);
		if (alarm)
			alarm_every_100ms();
		static char buf[1 << 16];
		for (long n = 0;; n++) {
			int rc = rd ? (int)shmring_recv(r, buf, sizeof buf, -1) : shmring_send(r, buf, 8, -1);
			if (rc < 0) {
				if (alarm)
					printf("%s %ld alarms=%d\n", errname(errno), n, (int)alarms);
				else
					printf("%s %ld\n", errname(errno), n);
				return 0;
			}
		}
	}
	if (!strcmp(mode, "fork-writer")) {
		if (shmring_writer(r) < 0)
			return fail("claim");
		if (shmring_send(r, "p0", 2, 1000) < 0)
			return fail("send p0");
		int p[2];
		if (pipe(p) < 0)
			return fail("pipe");
		fflush(stdout);
		pid_t pid = fork();
		if (pid < 0)
			return fail("fork");
		if (pid == 0) {
			int null = open("/dev/null", O_RDWR);
			dup2(null, 1); /* the test waits for the parent's stdout to end */
			dup2(null, 2);
			char buf[64];
			int s = shmring_send(r, "c", 1, 0) < 0 ? errno : 0;
			int c = shmring_writer(r) < 0 ? errno : 0;
			int v = shmring_recv(r, buf, sizeof buf, 0) < 0 ? errno : 0;
			char rep[128];
			int n = snprintf(rep, sizeof rep, "%s %s %s", s ? errname(s) : "OK", c ? errname(c) : "OK", v ? errname(v) : "OK");
			if (write(p[1], rep, (size_t)n) != n)
				_exit(1);
			close(p[1]);
			for (;;)
				pause(); /* idle, until the test kills it */
		}
		close(p[1]);
		char rep[128];
		ssize_t n = read(p[0], rep, sizeof rep - 1);
		if (n <= 0)
			return fail("read the child's report");
		rep[n] = 0;
		if (shmring_send(r, "p1", 2, 1000) < 0)
			return fail("send p1");
		printf("ready child %d %s\n", (int)pid, rep);
		fflush(stdout);
		for (;;)
			pause();
	}
	if (!strcmp(mode, "try-send") || !strcmp(mode, "try-recv") || !strcmp(mode, "try-send-batch") || !strcmp(mode, "try-recv-batch")) {
		int rd = mode[4] == 'r', batch = strlen(mode) > 8;
		if (argc > 3 && !strcmp(argv[3], "guard") && guard_page(r) < 0)
			return 1;
		if ((rd ? shmring_reader(r) : shmring_writer(r)) < 0)
			return fail("claim");
		if (has_opt(argc, argv, 3, "wait")) {
			ready_slot(r);
			wait_line();
		}
		size_t max = shmring_max_message(r);
		unsigned char *buf = calloc(1, max + 1);
		size_t lens[8] = {0, max, 1, 13, max / 2, 7, max - 1, 64};
		int i;
		if (batch) {
			struct iovec iov[8];
			size_t got[8];
			for (int j = 0; j < 8; j++) {
				iov[j].iov_base = rd ? malloc(max + 1) : buf;
				iov[j].iov_len = rd ? max + 1 : lens[j] <= max ? lens[j] : max;
			}
			int rc = 0;
			for (i = 0; i < 8; i += rc) {
				rc = rd ? shmring_recv_batch(r, iov, got, 8 - i, 20) : shmring_send_batch(r, iov + i, 8 - i, 20);
				if (rc <= 0)
					break;
				for (int j = 0; rd && j < rc; j++)
					if (got[j] > max) {
						printf("TOOBIG %d\n", i + j);
						return 0;
					}
			}
			printf("%s %d\n", i < 8 ? errname(errno) : "OK", i);
			shmring_close(r);
			return 0;
		}
		for (i = 0; i < 8; i++) {
			ssize_t rc = rd ? shmring_recv(r, buf, max + 1, 20) : shmring_send(r, buf, lens[i] <= max ? lens[i] : max, 20);
			if (rc < 0)
				break;
			if (rd && (size_t)rc > max) {
				printf("TOOBIG %d\n", i);
				return 0;
			}
		}
		printf("%s %d\n", i < 8 ? errname(errno) : "OK", i);
		shmring_close(r);
		return 0;
	}
	if (!strncmp(mode, "bench-", 6) && argc == 6) { /* BATCH > 1: shmring_send_batch, shmring_recv_batch */
		size_t size = strtoull(argv[3], NULL, 10);
		long count = atol(argv[4]);
		int batch = atoi(argv[5]), rd = !strcmp(mode, "bench-read");
		struct iovec *iov = calloc((size_t)batch, sizeof *iov);
		size_t *lens = calloc((size_t)batch, sizeof *lens);
		for (int j = 0; j < batch; j++) {
			iov[j].iov_base = calloc(1, size + 1);
			iov[j].iov_len = rd ? size + 1 : size;
		}
		if ((rd ? shmring_reader(r) : shmring_writer(r)) < 0)
			return fail("claim");
		printf("ready\n");
		fflush(stdout);
		unsigned sum = 0;
		if (!rd) {
			char line[16];
			if (!fgets(line, sizeof line, stdin))
				return fail("stdin");
		}
		for (long i = 0; i < count;) {
			int want = count - i < batch ? (int)(count - i) : batch, k;
			if (rd) {
				if ((k = shmring_recv_batch(r, iov, lens, want, -1)) <= 0)
					return fail("recv_batch");
				sum += ((unsigned char *)iov[k - 1].iov_base)[lens[k - 1] - 1];
			} else {
				((unsigned char *)iov[0].iov_base)[0] = (unsigned char)i;
				if ((k = shmring_send_batch(r, iov, want, -1)) <= 0)
					return fail("send_batch");
			}
			i += k;
		}
		shmring_close(r);
		printf("done %u\n", sum);
		return 0;
	}
	if (!strncmp(mode, "bench-", 6) && argc == 5) {
		size_t size = strtoull(argv[3], NULL, 10);
		long count = atol(argv[4]);
		unsigned char *buf = malloc(size + 1);
		memset(buf, 7, size);
		int rd = !strcmp(mode, "bench-read");
		if ((rd ? shmring_reader(r) : shmring_writer(r)) < 0)
			return fail("claim");
		printf("ready\n");
		fflush(stdout);
		unsigned sum = 0;
		if (!rd) {
			char line[16];
			if (!fgets(line, sizeof line, stdin))
				return fail("stdin");
		}
		for (long i = 0; i < count; i++) {
			if (rd) {
				ssize_t n = shmring_recv(r, buf, size + 1, -1); /* the payload read: copied out */
				if (n < 0)
					return fail("recv");
				sum += buf[n - 1];
			} else {
				buf[0] = (unsigned char)i; /* the payload written: copied in */
				if (shmring_send(r, buf, size, -1) < 0)
					return fail("send");
			}
		}
		shmring_close(r);
		printf("done %u\n", sum);
		return 0;
	}
	if (!strcmp(mode, "echo") && argc == 5) {
		shmring *out = shmring_open(argv[3]);
		if (!out)
			return fail("open OUT");
		if (shmring_reader(r) < 0 || shmring_writer(out) < 0)
			return fail("claim");
		r->spin_ns = out->spin_ns = atol(argv[4]);
		printf("ready\n");
		fflush(stdout);
		static char buf[1 << 16];
		for (;;) {
			ssize_t n = shmring_recv(r, buf, sizeof buf, -1);
			if (n < 0)
				break;
			if (shmring_send(out, buf, (size_t)n, -1) < 0)
				return fail("send");
		}
		if (errno != EPIPE)
			return fail("recv");
		shmring_close(out);
		shmring_close(r);
		return 0;
	}
	if (!strcmp(mode, "wait-peer") && argc == 4) {
		if ((!strcmp(argv[3], "writer") ? shmring_writer(r) : shmring_reader(r)) < 0)
			return fail("claim");
		printf("ready\n");
		fflush(stdout);
		printf("%s\n", shmring_wait_peer(r, 10000) < 0 ? errname(errno) : "peer");
		shmring_close(r);
		return 0;
	}
	if (!strncmp(mode, "batch-", 6) && argc == 6) {
		uint64_t count = strtoull(argv[3], NULL, 10), seed = strtoull(argv[4], NULL, 10);
		int batch = atoi(argv[5]);
		size_t max = shmring_max_message(r);
		pattern(seed, max);
		y = (uint32_t)seed | 1;
		uint64_t p = 0, i = 0;
		unsigned long calls = 0;
		struct iovec *iov = calloc((size_t)batch, sizeof *iov);
		size_t *lens = calloc((size_t)batch, sizeof *lens);
		if (!strcmp(mode, "batch-write")) {
			if (shmring_writer(r) < 0)
				return fail("writer");
			int have = 0; /* messages of the stream in iov not yet sent */
			while (i < count || have > 0) {
				while (have < batch && i < count) {
					size_t n = next_len(i++, max);
					iov[have].iov_base = pat + p % PATN;
					iov[have++].iov_len = n;
					p += n;
				}
				int k = shmring_send_batch(r, iov, have, 10000);
				calls++;
				if (k <= 0)
					return fail("send_batch");
				memmove(iov, iov + k, (size_t)(have - k) * sizeof *iov);
				have -= k;
			}
		} else {
			if (shmring_reader(r) < 0)
				return fail("reader");
			for (int j = 0; j < batch; j++) {
				iov[j].iov_base = malloc(max + 1);
				iov[j].iov_len = max + 1;
			}
			while (i < count) {
				int want_n = count - i < (uint64_t)batch ? (int)(count - i) : batch;
				int k = shmring_recv_batch(r, iov, lens, want_n, 10000);
				calls++;
				if (k <= 0)
					return fail("recv_batch");
				for (int j = 0; j < k; j++, i++) {
					size_t n = next_len(i, max);
					if (lens[j] != n || memcmp(iov[j].iov_base, pat + p % PATN, n)) {
						fprintf(stderr, "peer: message %llu: length %zu, want %zu, or wrong content\n", (unsigned long long)i, lens[j], n);
						return 1;
					}
					p += n;
				}
			}
			if (shmring_recv_batch(r, iov, lens, batch, 10000) != -1 || errno != EPIPE)
				return fail("after the last message, want EPIPE (end of stream)");
		}
		printf("ok %llu %llu calls=%lu publishes=%lu wakes=%lu\n", (unsigned long long)count, (unsigned long long)p, calls, r->publishes, r->wakes);
		fflush(stdout);
		shmring_close(r);
		return 0;
	}
	if (argc != 5) {
		fprintf(stderr, "usage: peer write|read NAME COUNT SEED\n");
		return 2;
	}
	uint64_t count = strtoull(argv[3], NULL, 10), seed = strtoull(argv[4], NULL, 10);
	size_t max = shmring_max_message(r);
	pattern(seed, max);
	y = (uint32_t)seed | 1;
	uint64_t p = 0;
	if (!strcmp(mode, "write")) {
		if (shmring_writer(r) < 0)
			return fail("writer");
		for (uint64_t i = 0; i < count; i++) {
			size_t n = next_len(i, max);
			if (shmring_send(r, pat + p % PATN, n, 10000) < 0)
				return fail("send");
			p += n;
		}
		char big[1];
		if (shmring_send(r, big, max + 1, 0) != -1 || errno != EMSGSIZE)
			return fail("send of max+1 bytes is not EMSGSIZE");
		shmring_close(r);
		printf("ok %llu %llu\n", (unsigned long long)count, (unsigned long long)p);
		return 0;
	}
	if (strcmp(mode, "read"))
		return 2;
	if (shmring_reader(r) < 0)
		return fail("reader");
	unsigned char *buf = malloc(max + 1);
	for (uint64_t i = 0; i < count; i++) {
		size_t n = next_len(i, max);
		if (n > 0) {
			/* a buffer one byte short is EMSGSIZE and leaves the message */
			if (shmring_recv(r, buf, n - 1, 10000) != -1 || errno != EMSGSIZE) {
				fprintf(stderr, "peer: message %llu: recv into %zu bytes is not EMSGSIZE\n", (unsigned long long)i, n - 1);
				return 1;
			}
		}
		ssize_t got = shmring_recv(r, buf, max + 1, 10000);
		if (got < 0)
			return fail("recv");
		if ((size_t)got != n) {
			fprintf(stderr, "peer: message %llu has length %zd, want %zu\n", (unsigned long long)i, got, n);
			return 1;
		}
		if (memcmp(buf, pat + p % PATN, n)) {
			fprintf(stderr, "peer: message %llu at byte %llu: wrong content\n", (unsigned long long)i, (unsigned long long)p);
			return 1;
		}
		p += n;
	}
	if (shmring_recv(r, buf, max + 1, 10000) != -1 || errno != EPIPE)
		return fail("after the last message, want EPIPE (end of stream)");
	shmring_close(r);
	printf("ok %llu %llu\n", (unsigned long long)count, (unsigned long long)p);
	return 0;
}
