import Foundation

/// Where the hub keeps its CA, certificates, store and tokens, and the checks that turn a bad
/// folder into a sentence a person can act on (Foundation's errors read "NSCocoaErrorDomain
/// Code=513").
public enum DataFolder {
    public static let environmentVariable = "LARIAT_DATA"

    /// `$LARIAT_DATA`; else `$XDG_DATA_HOME/lariat`; else `/var/lib/lariat` for root and
    /// `~/.local/share/lariat` for anyone else. Never the current folder: a hub started from a
    /// source tree must not leave its keys in it.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment,
                                   isRoot: Bool = geteuid() == 0) -> String {
        if let given = environment[environmentVariable], !given.isEmpty { return given }
        if let xdg = environment["XDG_DATA_HOME"], xdg.hasPrefix("/") { return xdg + "/lariat" }
        if isRoot { return "/var/lib/lariat" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.local/share/lariat"
    }

    public struct Problem: Error, CustomStringConvertible {
        public let description: String
    }

    /// Creates `path` (and its parents, mode 0700: it holds the CA key) unless it exists, and
    /// checks that it is a folder this process may write.
    public static func prepare(_ path: String) throws(Problem) {
        let advice = "choose another folder with --data or \(environmentVariable)"
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) {
            guard isFolder.boolValue else { throw Problem(description: "the data folder \(path) is a file, not a folder; \(advice)") }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            } catch {
                throw Problem(description: "cannot create the data folder \(path): \(reason(for: path)); \(advice)")
            }
        }
        guard access(path, W_OK | X_OK) == 0 else {
            throw Problem(description: "cannot write in the data folder \(path): \(String(cString: strerror(errno))); \(advice), or give this user write access to it")
        }
    }

    /// The hub's CA certificate (PEM) from data folder `path`, for commands that talk to a
    /// running hub from the same machine.
    public static func caPEM(in path: String) throws(Problem) -> String {
        let file = path + "/tls/ca.pem"
        guard let pem = try? String(contentsOfFile: file, encoding: .utf8) else {
            let why = FileManager.default.fileExists(atPath: file) ? "cannot be read by this user" : "does not exist"
            throw Problem(description: "the hub's CA certificate \(file) \(why): point --data (or \(environmentVariable)) at the folder the hub was started with")
        }
        return pem
    }

    /// Why creating `path` failed, in the words of the nearest existing parent.
    private static func reason(for path: String) -> String {
        var parent = (path as NSString).deletingLastPathComponent
        while !parent.isEmpty && parent != "/" && !FileManager.default.fileExists(atPath: parent) {
            parent = (parent as NSString).deletingLastPathComponent
        }
        if parent.isEmpty { parent = "." }
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: parent, isDirectory: &isFolder), !isFolder.boolValue {
            return "\(parent) is a file"
        }
        if access(parent, W_OK | X_OK) != 0 { return "\(parent) is not writable by this user" }
        return "the system refused"
    }
}
