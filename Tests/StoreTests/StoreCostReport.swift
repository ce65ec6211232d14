import Foundation
import LariatStore
import Testing

/// Prints what a get and a create cost on each backend (figures for the reader, never asserted:
/// the machine is shared). Run alone: `--filter StoreCostReport`.
@Suite struct StoreCostReport {
    @Test(arguments: Backend.allCases)
    func microsecondsPerGetAndCreate(_ backend: Backend) throws {
        let b = try backend.make()
        defer { b.close() }
        let document = try JSONEncoder().encode(["spec": String(repeating: "x", count: 300)])
        let creates = 200
        let clock = ContinuousClock()
        let createTime = try clock.measure {
            for i in 0..<creates { _ = try b.create(StoreKey(kind: "cost", name: "o\(i)"), document) }
        }
        let gets = 2000
        let getTime = try clock.measure {
            for i in 0..<gets { _ = try b.get(StoreKey(kind: "cost", name: "o\(i % creates)")) }
        }
        func micros(_ d: Duration, _ n: Int) -> String {
            let s = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
            return String(format: "%.1f", s * 1e6 / Double(n))
        }
        print("store cost [\(backend.rawValue)]: create \(micros(createTime, creates)) µs, get \(micros(getTime, gets)) µs")
        #expect(try b.list(kind: "cost", after: nil, limit: 1000).items.count == creates)
    }
}
