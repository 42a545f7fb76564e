import Glibc

/// Process signals for command-line servers: block SIGINT/SIGTERM/SIGHUP before starting threads (so
/// every thread inherits the mask) and ignore SIGPIPE; then the main thread waits for one.
public enum Signals {
    public static func blockTermination() {
        signal(SIGPIPE, SIG_IGN)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGHUP)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits until SIGINT, SIGTERM or SIGHUP arrives; returns its number.
    public static func waitForTermination() -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGHUP)
        var received: Int32 = 0
        sigwait(&set, &received)
        return received
    }
}
