// lariat-store-probe: writes to the embedded store and prints one line per acknowledged write,
// so a test can SIGKILL it right after an acknowledgment and check the write survived.
//   lariat-store-probe FOLDER COUNT   creates probes/p0000 … (COUNT objects), then waits to be killed
import Foundation
import LariatStore

let args = CommandLine.arguments
guard args.count == 3, let count = Int(args[2]) else {
    FileHandle.standardError.write(Data("usage: lariat-store-probe FOLDER COUNT\n".utf8))
    exit(2)
}
do {
    let store = try SQLiteBackend(folder: args[1])
    for i in 0..<count {
        let name = String(format: "p%04d", i)
        let revision = try store.create(StoreKey(kind: "probes", name: name), try JSONEncoder().encode(["n": i]))
        // Written to the pipe unbuffered: the parent sees the line only after create returned.
        FileHandle.standardOutput.write(Data("acknowledged \(name) \(revision)\n".utf8))
    }
    FileHandle.standardOutput.write(Data("done\n".utf8))
    while true { sleep(60) }
} catch {
    FileHandle.standardError.write(Data("lariat-store-probe: \(error)\n".utf8))
    exit(1)
}
