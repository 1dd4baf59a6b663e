/* google-benchmark main: registers the C cases of registry.c, adds cycles/ns per op, prints comparisons. */
#include <benchmark/benchmark.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define VFURT_BENCH_HAVE_TSC 1
#endif

#include "shim.h"

/* The C state: one run of a case. */
struct vfurt_bench_state {
	benchmark::State *s = nullptr;
	void *fixture = nullptr;
	int64_t arg = 0;
	bool started = false;
	bool done = false;
	bool paused = false;
	uint64_t tsc0 = 0, tsc_end = 0, tsc_paused = 0, tsc_pause_at = 0;
	uint64_t ns0 = 0, ns_end = 0, ns_paused = 0, ns_pause_at = 0;
};

namespace {

uint64_t mono_ns()
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Keeps the fixture of the case being run, so that the repeated runs
 * google-benchmark makes while it sizes the iteration count (and adjacent
 * cases sharing a setup) do not rebuild servers and threads each time. A
 * case without setup releases it: a busy-polling server left running would
 * take a core from the next benchmark.
 */
class Fixtures {
public:
	~Fixtures() { release(); }

	void *get(const vfurt_bench_case *c, int64_t arg, const char **why)
	{
		*why = nullptr;
		if (!c->setup) {
			release();
			return nullptr;
		}
		if (!have_ || setup_ != c->setup || arg_ != arg) {
			release();
			why_ = nullptr;
			fixture_ = c->setup(arg, &why_);
			if (!fixture_ && !why_)
				why_ = "setup failed";
			setup_ = c->setup;
			teardown_ = c->teardown;
			arg_ = arg;
			have_ = true;
		}
		*why = why_;
		return fixture_;
	}

	void release()
	{
		if (have_ && fixture_ && teardown_)
			teardown_(fixture_);
		have_ = false;
		fixture_ = nullptr;
	}

private:
	bool have_ = false;
	vfurt_bench_setup_fn setup_ = nullptr;
	vfurt_bench_teardown_fn teardown_ = nullptr;
	int64_t arg_ = 0;
	void *fixture_ = nullptr;
	const char *why_ = nullptr;
};

/* Console output plus a record of every result's ns/op for the summary. */
class SummaryReporter : public benchmark::ConsoleReporter {
public:
	explicit SummaryReporter(OutputOptions o) : ConsoleReporter(o) {}

	void ReportRuns(const std::vector<Run> &runs) override
	{
		ConsoleReporter::ReportRuns(runs);
		/* with --benchmark_repetitions the median wins over the single runs */
		for (const Run &r : runs) {
			const std::string &name = r.run_name.function_name;

			if (r.error_occurred)
				continue;
			if (r.run_type == Run::RT_Iteration && !median_.count(name))
				ns_[name] = r.GetAdjustedRealTime();
			else if (r.run_type == Run::RT_Aggregate && r.aggregate_name == "median" &&
				 r.aggregate_unit == benchmark::kTime) {
				ns_[name] = r.GetAdjustedRealTime();
				median_[name] = true;
			}
		}
	}

	bool find(const char *name, double *ns) const
	{
		auto it = ns_.find(name);

		if (it == ns_.end())
			return false;
		*ns = it->second;
		return true;
	}

private:
	std::map<std::string, double> ns_;
	std::map<std::string, bool> median_;
};

void print_comparisons(const SummaryReporter &rep)
{
	bool header = false;

	for (size_t i = 0; i < vfurt_bench_ncompares; i++) {
		const vfurt_bench_compare &c = vfurt_bench_compares[i];
		double a, b;

		if (!rep.find(c.a, &a) || !rep.find(c.b, &b) || a <= 0 || b <= 0)
			continue;
		if (!header) {
			printf("\nComparisons (ns per op, median when repeated; lower is faster):\n");
			header = true;
		}
		printf("  %s\n    %-44s %10.1f ns\n    %-44s %10.1f ns\n    faster: %s (%.2fx)\n",
		       c.question, c.a, a, c.b, b, a <= b ? c.a : c.b, a <= b ? b / a : a / b);
	}
	fflush(stdout);
}

/* Display format requested on the command line ("console" by default). */
std::string requested_format(int argc, char **argv)
{
	const char *flag = "--benchmark_format=";

	for (int i = 1; i < argc; i++)
		if (strncmp(argv[i], flag, strlen(flag)) == 0)
			return argv[i] + strlen(flag);
	return "console";
}

void run_case(benchmark::State &s, const vfurt_bench_case *c, int64_t arg, Fixtures *fx)
{
	vfurt_bench_state st;
	const char *why = nullptr;

	st.s = &s;
	st.arg = arg;
	st.fixture = fx->get(c, arg, &why);
	if (c->setup && !st.fixture) {
		s.SkipWithError(why);
		return;
	}
	c->fn(&st);
	if (!st.done || s.iterations() == 0)
		return;
	double ops = (double)s.iterations();
	s.counters["cycles_per_op"] = (double)(st.tsc_end - st.tsc0 - st.tsc_paused) / ops;
	s.counters["ns_per_op"] = (double)(st.ns_end - st.ns0 - st.ns_paused) / ops;
}

} /* namespace */

extern "C" {

uint64_t vfurt_bench_cycles(void)
{
#ifdef VFURT_BENCH_HAVE_TSC
	return __rdtsc();
#else
	return mono_ns();
#endif
}

bool vfurt_bench_keep_running_batch(struct vfurt_bench_state *st, uint64_t n)
{
	if (!st->started) {
		bool more = st->s->KeepRunningBatch((benchmark::IterationCount)n);

		st->started = true;
		st->ns0 = mono_ns();
		st->tsc0 = vfurt_bench_cycles();
		return more;
	}
	uint64_t tsc = vfurt_bench_cycles();
	uint64_t ns = mono_ns();

	if (st->s->KeepRunningBatch((benchmark::IterationCount)n))
		return true;
	st->tsc_end = tsc;
	st->ns_end = ns;
	st->done = true;
	return false;
}

bool vfurt_bench_keep_running(struct vfurt_bench_state *st)
{
	return vfurt_bench_keep_running_batch(st, 1);
}

uint64_t vfurt_bench_iterations(const struct vfurt_bench_state *st)
{
	return (uint64_t)st->s->iterations();
}

int64_t vfurt_bench_arg(const struct vfurt_bench_state *st)
{
	return st->arg;
}

void *vfurt_bench_fixture(const struct vfurt_bench_state *st)
{
	return st->fixture;
}

void vfurt_bench_set_items(struct vfurt_bench_state *st, int64_t n)
{
	st->s->SetItemsProcessed(n);
}

void vfurt_bench_counter(struct vfurt_bench_state *st, const char *name, double v)
{
	st->s->counters[name] = benchmark::Counter(v);
}

void vfurt_bench_counter_rate(struct vfurt_bench_state *st, const char *name, double v)
{
	st->s->counters[name] = benchmark::Counter(v, benchmark::Counter::kIsRate);
}

void vfurt_bench_label(struct vfurt_bench_state *st, const char *label)
{
	st->s->SetLabel(label);
}

void vfurt_bench_skip(struct vfurt_bench_state *st, const char *why)
{
	st->s->SkipWithError(why);
}

void vfurt_bench_pause(struct vfurt_bench_state *st)
{
	if (st->paused || !st->started)
		return;
	st->tsc_pause_at = vfurt_bench_cycles();
	st->ns_pause_at = mono_ns();
	st->s->PauseTiming();
	st->paused = true;
}

void vfurt_bench_resume(struct vfurt_bench_state *st)
{
	if (!st->paused)
		return;
	st->s->ResumeTiming();
	st->tsc_paused += vfurt_bench_cycles() - st->tsc_pause_at;
	st->ns_paused += mono_ns() - st->ns_pause_at;
	st->paused = false;
}

void vfurt_bench_sink(const void *p)
{
	benchmark::DoNotOptimize(p);
}

int vfurt_bench_pin_self(int cpu)
{
	cpu_set_t set;

	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return -EINVAL;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return -pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

int vfurt_bench_cpus_allowed(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 1;
	return CPU_COUNT(&set);
}

} /* extern "C" */

int main(int argc, char **argv)
{
	std::string format = requested_format(argc, argv);
	Fixtures fixtures;
	cpu_set_t all;
	bool have_all = sched_getaffinity(0, sizeof(all), &all) == 0;

	benchmark::Initialize(&argc, argv);
	if (benchmark::ReportUnrecognizedArguments(argc, argv))
		return 1;
	for (size_t i = 0; i < vfurt_bench_nsuites; i++) {
		const vfurt_bench_suite &suite = vfurt_bench_suites[i];

		for (size_t j = 0; suite.cases[j].name; j++) {
			const vfurt_bench_case *c = &suite.cases[j];
			size_t nargs = c->nargs ? c->nargs : 1;

			for (size_t k = 0; k < nargs && k < VFURT_BENCH_MAX_ARGS; k++) {
				int64_t arg = c->nargs ? c->args[k] : 0;
				std::string name = c->name;

				if (c->nargs)
					name += "/" + std::string(c->arg_name ? c->arg_name : "arg") +
						":" + std::to_string(arg);
				benchmark::RegisterBenchmark(name.c_str(),
							     [c, arg, &fixtures, &all, have_all](
								     benchmark::State &s) {
								     run_case(s, c, arg, &fixtures);
								     /* cases pin the main thread; undo it */
								     if (have_all)
									     sched_setaffinity(0, sizeof(all), &all);
							     })
					->UseRealTime()
					->Unit(benchmark::kNanosecond);
			}
		}
	}

	if (format == "console") {
		SummaryReporter rep(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_ColorTabular
							  : benchmark::ConsoleReporter::OO_Tabular);

		benchmark::RunSpecifiedBenchmarks(&rep);
		fixtures.release();
		print_comparisons(rep);
	} else {
		benchmark::RunSpecifiedBenchmarks();
		fixtures.release();
	}
	benchmark::Shutdown();
	return 0;
}
