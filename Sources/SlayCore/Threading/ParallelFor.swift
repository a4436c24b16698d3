#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Runs `workers` copies of a body on POSIX threads, worker 0 on the calling thread.
///
/// Plain pthreads rather than Dispatch: the library must not depend on a second runtime being
/// present, and a host engine expects exactly the threads it asked for. If a thread cannot be
/// started its share runs on the calling thread, so results never depend on thread creation.
public enum ParallelFor {
    private final class Job: @unchecked Sendable {
        let body: (Int) -> Void
        let worker: Int
        init(body: @escaping (Int) -> Void, worker: Int) {
            self.body = body
            self.worker = worker
        }
    }

    public static func run(workers: Int, _ body: @escaping (Int) -> Void) {
        guard workers > 1 else {
            body(0)
            return
        }
        #if canImport(Glibc) || canImport(Musl)
        var threads: [pthread_t] = []
        var inline: [Int] = []
        for worker in 1..<workers {
            let job = Unmanaged.passRetained(Job(body: body, worker: worker))
            var thread = pthread_t()
            let started = pthread_create(&thread, nil, { context in
                let job = Unmanaged<Job>.fromOpaque(context!).takeRetainedValue()
                job.body(job.worker)
                return nil
            }, job.toOpaque())
            if started == 0 {
                threads.append(thread)
            } else {
                job.release()
                inline.append(worker)
            }
        }
        body(0)
        for worker in inline { body(worker) }
        for thread in threads { pthread_join(thread, nil) }
        #else
        for worker in 0..<workers { body(worker) }
        #endif
    }

    /// The contiguous share [lower, upper) of `count` items that `worker` of `workers` owns.
    public static func share(of count: Int, worker: Int, workers: Int) -> Range<Int> {
        let base = count / workers
        let extra = count % workers
        let lower = worker * base + min(worker, extra)
        return lower..<(lower + base + (worker < extra ? 1 : 0))
    }
}
