@testable import LariatHub
import Foundation
import Testing

/// Session recordings read the relayed WebSocket frames of both directions (the client's masked).
@Suite struct SessionRecordingTests {
    func frame(channel: UInt8, _ payload: [UInt8], mask: [UInt8]? = nil) -> [UInt8] {
        let body = [channel] + payload
        var out: [UInt8] = [0x82]
        let maskBit: UInt8 = mask == nil ? 0 : 0x80
        if body.count < 126 { out.append(maskBit | UInt8(body.count)) } else {
            out += [maskBit | 126, UInt8(body.count >> 8), UInt8(body.count & 0xFF)]
        }
        guard let mask else { return out + body }
        out += mask
        return out + body.enumerated().map { $0.element ^ mask[$0.offset & 3] }
    }

    func read(_ stream: [UInt8], splitAt split: Int) -> [Int: [UInt8]] {
        var reader = WebSocketChannelReader()
        var got: [Int: [UInt8]] = [:]
        stream.withUnsafeBytes { all in
            for part in [all[..<split], all[split...]] {
                reader.scan(UnsafeRawBufferPointer(rebasing: part)) { channel, piece in got[channel, default: []] += Array(piece) }
            }
        }
        return got
    }

    @Test func channelsArriveWhateverTheSplitMaskedOrNot() {
        let text = Array("hello, terminal".utf8)
        let long = Array(repeating: UInt8(ascii: "x"), count: 300)
        let server = frame(channel: 1, text) + [0x89, 0] + frame(channel: 2, long) + frame(channel: 3, Array("{}".utf8))
        let client = frame(channel: 0, Array("ls\r".utf8), mask: [1, 2, 3, 4])
            + frame(channel: 4, Array(#"{"Width":120,"Height":40}"#.utf8), mask: [9, 8, 7, 6])
        for split in [0, 1, 2, 3, 5, 17, 40, server.count / 2, server.count] where split <= server.count {
            let got = read(server, splitAt: split)
            #expect(got[1] == text, "split \(split)")
            #expect(got[2] == long, "split \(split)")
            #expect(got[3] == Array("{}".utf8))
        }
        for split in [0, 1, 6, 7, 9, client.count] {
            let got = read(client, splitAt: split)
            #expect(got[0] == Array("ls\r".utf8), "split \(split)")
            #expect(got[4] == Array(#"{"Width":120,"Height":40}"#.utf8))
        }
    }

    @Test func aRecordingIsAsciicastV2() throws {
        let dir = NSTemporaryDirectory() + "lariat-rec-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try #require(SessionRecorder(directory: dir, name: "s1", title: "alice exec default/p1: sh", now: 1_000,
                                             wallClock: 1_796_000_000))
        frame(channel: 4, Array(#"{"Width":100,"Height":30}"#.utf8), mask: [1, 1, 1, 1]).withUnsafeBytes { r.clientSent($0, now: 2_000) }
        frame(channel: 0, Array("echo hi\r".utf8), mask: [5, 6, 7, 8]).withUnsafeBytes { r.clientSent($0, now: 1_500_001_000) }
        frame(channel: 1, Array("hi\r\n\"q\"".utf8)).withUnsafeBytes { r.serverSent($0, now: 1_600_001_000) }
        r.finish()
        var text = ""
        for _ in 0..<100 {
            text = (try? String(contentsOfFile: r.path, encoding: .utf8)) ?? ""
            if text.split(separator: "\n").count >= 4 { break }
            usleep(10_000)
        }
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.count == 4)
        let header = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any]
        #expect(header?["version"] as? Int == 2)
        #expect(header?["title"] as? String == "alice exec default/p1: sh")
        let events = try lines.dropFirst().map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [Any] }
        #expect(events[0][1] as? String == "r" && events[0][2] as? String == "100x30")
        #expect(events[1][1] as? String == "i" && events[1][2] as? String == "echo hi\r")
        #expect((events[1][0] as? Double ?? 0) > 1.49 && (events[1][0] as? Double ?? 0) < 1.51)
        #expect(events[2][1] as? String == "o" && events[2][2] as? String == "hi\r\n\"q\"")
        let mode = try FileManager.default.attributesOfItem(atPath: r.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(SessionRecorder.seconds(1_000) == "0.000001")
        #expect(SessionRecorder.seconds(12_345_678_901) == "12.345678")
    }
}
