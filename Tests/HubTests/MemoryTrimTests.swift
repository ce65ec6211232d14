import CLariatSupport
@testable import LariatHub
import Testing

/// The trim policy on the shapes of perf/results/flood.json: floods that ramp up (memory in
/// use), close (freed, still resident), and are trimmed.
@Suite struct MemoryTrimPolicyTests {
    /// At start: 3 MiB resident (anonymous), 2 MiB of heap in use; 16 MiB threshold.
    var policy = MemoryTrimPolicy(thresholdBytes: 16 << 20, residentBytes: 3 << 20, heapInUseBytes: 2 << 20)

    /// Feeds checks of (resident MiB, heap in use MiB); returns whether each one trims. A trim
    /// is followed by `trimmedTo` (resident MiB), as the trimmer does.
    mutating func checks(_ samples: [(resident: Int, inUse: Int)], trimmedTo: Int? = nil) -> [Bool] {
        samples.map { sample in
            let trim = policy.shouldTrim(residentBytes: sample.resident << 20, heapInUseBytes: sample.inUse << 20)
            if trim, let trimmedTo { policy.didTrim(residentBytes: trimmedTo << 20, heapInUseBytes: sample.inUse << 20) }
            return trim
        }
    }

    @Test mutating func memoryInUseIsNeverTrimmed() {
        // 5,000 connections opening, then held: resident grows, the heap in use more.
        let trims = checks([(90, 150), (200, 560), (200, 560)])
        #expect(trims == [false, false, false])
    }

    @Test mutating func memoryFreedByClosedConnectionsIsTrimmedOnce() {
        // Held, closed (the heap in use falls), settled: trimmed to 5 MiB; then quiet, also
        // with a little growth and release.
        let trims = checks([(200, 560), (200, 2), (200, 2), (5, 2), (12, 9), (12, 2), (12, 2)], trimmedTo: 5)
        #expect(trims == [false, false, true, false, false, false, false])
    }

    /// A check in the middle of a mass close waits; the trim comes once the heap in use has
    /// stopped falling, and only then.
    @Test mutating func aCloseSpanningChecksIsTrimmedWhenItEnds() {
        let trims = checks([(200, 560), (200, 280), (200, 2), (200, 2), (5, 2)], trimmedTo: 5)
        #expect(trims == [false, false, false, true, false])
    }

    /// A flood that opened and closed between two checks: the heap in use never looked high,
    /// but the process grew and the growth is not in use.
    @Test mutating func aFloodBetweenTwoChecksIsTrimmed() {
        let trims = checks([(200, 2)])
        #expect(trims == [true])
    }

    @Test mutating func changesBelowTheThresholdAreLeftToTheAllocator() {
        // 15 MiB freed (and settled): left alone; 16 MiB: trimmed.
        let trims = checks([(18, 17), (18, 2), (18, 2), (19, 1)])
        #expect(trims == [false, false, false, true])
    }

    /// The C side reports real figures on this platform (glibc), and a trim runs.
    @Test func heapFiguresAndTrimAreAvailable() {
        var usage = lariat_heap_usage()
        #expect(lariat_heap_usage_get(&usage) == 1)
        #expect(usage.in_use > 0)
        #expect(lariat_resident_anonymous_bytes() > 0)
        #expect(lariat_heap_trim() >= 0)
    }
}
