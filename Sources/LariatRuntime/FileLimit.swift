#if canImport(Glibc)
import Glibc
#endif

public enum FileLimit {
    /// Lifts the soft limit on open files to the hard limit: every connection is a descriptor,
    /// and the usual soft limit (1024) would refuse a busy hub's agents long before its
    /// configured connection cap. Returns the limit now in force.
    @discardableResult
    public static func raiseToHardLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Int(clamping: limit.rlim_cur)
    }
}
