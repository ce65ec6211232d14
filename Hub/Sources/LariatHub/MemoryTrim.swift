import CLariatSupport
import Logging
import LariatRuntime

/// When the hub hands free heap memory back to the kernel.
///
/// Why: 1,000 TLS connections have 114 MB of heap in use (buffers mostly untouched) and about
/// 40 KiB each resident. When they close the heap in use falls back to 1.3 MB (heaptrack), but
/// glibc keeps the freed pages: on its own it returns memory only from the top of an arena,
/// and a chunk still live pins the top. The next flood lays its chunks out differently and
/// touches pages the last one left untouched, so the RSS grew with every flood (29 → 224 →
/// 347 → 425 MiB over three floods of 5,000). Not a leak: malloc_trim(0) took 224 MiB back
/// to 33 MiB. `perf/results/flood.json` has the figures, `perf/scripts/flood.py` the flood.
public struct MemoryTrimSettings: Sendable {
    /// How often the hub looks at its memory, in milliseconds: one read of /proc/self/statm
    /// and glibc's totals, about 1.5 ms just after a flood of 5,000 connections. A trim comes
    /// two checks after a mass close has ended. 0 turns trimming off.
    public var checkIntervalMilliseconds: UInt64 = 2_000
    /// How much freed memory is worth a trim. Smaller amounts stay with the allocator, which
    /// reuses them without page faults; 16 MiB is about 400 closed TLS connections.
    public var thresholdBytes = 16 << 20

    public init() {}
}

/// The decision, free of system calls so that it can be tested. Fed, every check, the
/// resident memory not backed by files (heap, stacks) and the heap in use, it trims when
/// memory the program used has been freed and is likely still resident:
/// - the heap in use fell by the threshold from its highest point since the last trim
///   (connections closed), or
/// - the process grew by the threshold since the last trim and that much of it is not in use
///   (a flood that came and went between two checks);
/// and only once the heap in use has stopped falling, so that a mass close is trimmed once,
/// when it is over, not halfway through. Memory resident because it is in use never triggers
/// a trim: a hub ramping up under load is left alone.
struct MemoryTrimPolicy: Sendable {
    let thresholdBytes: Int
    private(set) var peakInUseBytes: Int
    private(set) var lastInUseBytes: Int
    /// The resident size after the last trim, lowered whenever the process shrinks on its own.
    private(set) var baselineResidentBytes: Int

    init(thresholdBytes: Int, residentBytes: Int, heapInUseBytes: Int) {
        self.thresholdBytes = max(4, thresholdBytes)
        peakInUseBytes = heapInUseBytes
        lastInUseBytes = heapInUseBytes
        baselineResidentBytes = residentBytes
    }

    mutating func shouldTrim(residentBytes: Int, heapInUseBytes: Int) -> Bool {
        peakInUseBytes = max(peakInUseBytes, heapInUseBytes)
        baselineResidentBytes = min(baselineResidentBytes, residentBytes)
        // Falling by a quarter of the threshold since the last check: connections are still closing.
        let stillFalling = lastInUseBytes - heapInUseBytes >= thresholdBytes / 4
        lastInUseBytes = heapInUseBytes
        guard !stillFalling else { return false }
        let freed = peakInUseBytes - heapInUseBytes
        let grown = residentBytes - baselineResidentBytes
        return freed >= thresholdBytes || (grown >= thresholdBytes && residentBytes - heapInUseBytes >= thresholdBytes)
    }

    /// After a trim, both are measured from the new levels.
    mutating func didTrim(residentBytes: Int, heapInUseBytes: Int) {
        peakInUseBytes = heapInUseBytes
        baselineResidentBytes = residentBytes
    }
}

/// Runs `MemoryTrimPolicy` on a repeating timer. Loop-confined; the timer keeps the trimmer
/// alive until `close()` or the loop's shutdown closes it, so callers need not hold it.
///
/// Costs: a check reads /proc/self/statm and asks glibc for its totals (a walk of the free
/// lists under each arena's lock); a trim walks every arena and madvises its free pages away,
/// holding each arena's lock meanwhile — 60 to 80 ms after a flood of 5,000 connections, during
/// which that arena's thread waits to allocate. Hence trims only after memory was freed.
public final class MemoryTrimmer {
    private let timer: UVTimer
    private var policy: MemoryTrimPolicy
    private let logger: Logger

    /// Starts checking on `loop` (the hub uses its acceptor loop). Returns nil, doing nothing,
    /// when trimming is off or the platform cannot report its memory.
    @discardableResult
    public static func start(loop: UVLoop, settings: MemoryTrimSettings, logger: Logger) -> MemoryTrimmer? {
        guard settings.checkIntervalMilliseconds > 0, let (resident, inUse) = measure() else { return nil }
        return MemoryTrimmer(loop: loop, settings: settings, logger: logger, policy: MemoryTrimPolicy(
            thresholdBytes: settings.thresholdBytes, residentBytes: resident, heapInUseBytes: inUse))
    }

    private init(loop: UVLoop, settings: MemoryTrimSettings, logger: Logger, policy: MemoryTrimPolicy) {
        timer = UVTimer(loop: loop)
        self.policy = policy
        self.logger = logger
        let interval = settings.checkIntervalMilliseconds
        // A deliberate cycle (timer -> callback -> self), broken when the timer is closed.
        timer.start(afterMilliseconds: interval, repeatMilliseconds: interval) { self.check() }
    }

    public func close() { timer.close() }

    /// Resident anonymous memory and heap in use, in bytes.
    private static func measure() -> (resident: Int, inUse: Int)? {
        var usage = lariat_heap_usage()
        let resident = lariat_resident_anonymous_bytes()
        guard resident > 0, lariat_heap_usage_get(&usage) == 1 else { return nil }
        return (Int(resident), Int(usage.in_use))
    }

    private func check() {
        let started = UVLoop.now
        guard let (before, inUse) = Self.measure() else { return }
        let checked = UVLoop.now
        guard policy.shouldTrim(residentBytes: before, heapInUseBytes: inUse) else { return }
        _ = lariat_heap_trim()
        let after = Self.measure()
        policy.didTrim(residentBytes: after?.resident ?? before, heapInUseBytes: after?.inUse ?? inUse)
        let mib = { (bytes: Int) in String(Double((bytes * 10) >> 20) / 10) }
        logger.info("""
            gave free heap memory back to the kernel: resident (anonymous) \(mib(before)) → \
            \(mib(after?.resident ?? before)) MiB, \(mib(inUse)) MiB in use; checked in \
            \((checked - started) / 1_000) µs, trimmed in \((UVLoop.now - checked) / 1_000) µs
            """)
    }
}
