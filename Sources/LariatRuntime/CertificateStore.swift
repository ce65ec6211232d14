#if canImport(Glibc)
import Glibc
#endif

/// Keeps the CA and the serving certificate in a data folder:
///   ca.pem / ca.key           the CA (key 0600)
///   server.pem / server.key   the serving certificate (key 0600)
/// Missing material is generated on first use; existing files are reused as they are
/// (delete server.* to reissue with new names).
public struct CertificateStore: Sendable {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    public var caCertificatePath: String { "\(directory)/ca.pem" }
    public var caKeyPath: String { "\(directory)/ca.key" }
    public var serverCertificatePath: String { "\(directory)/server.pem" }
    public var serverKeyPath: String { "\(directory)/server.key" }

    public func loadOrCreateAuthority(commonName: String = "Lariat CA") throws -> CertificateAuthority {
        if let certificate = try FileIO.readIfExists(caCertificatePath),
           let key = try FileIO.readIfExists(caKeyPath) {
            return try CertificateAuthority(certificatePEM: certificate, privateKeyPEM: key)
        }
        let authority = try CertificateAuthority.generate(commonName: commonName)
        try save(authority)
        return authority
    }

    public func save(_ authority: CertificateAuthority) throws {
        try FileIO.makeDirectories(directory)
        try FileIO.writeAtomically(caKeyPath, authority.privateKeyPEM, mode: 0o600)
        try FileIO.writeAtomically(caCertificatePath, authority.certificatePEM, mode: 0o644)
    }

    public func loadOrIssueServerCertificate(from authority: CertificateAuthority, dnsNames: [String] = [],
                                             ipAddresses: [String] = []) throws -> IssuedCertificate {
        if let certificate = try FileIO.readIfExists(serverCertificatePath),
           let key = try FileIO.readIfExists(serverKeyPath) {
            return IssuedCertificate(certificatePEM: certificate, privateKeyPEM: key)
        }
        let issued = try authority.issueServerCertificate(dnsNames: dnsNames, ipAddresses: ipAddresses)
        try save(issued)
        return issued
    }

    public func save(_ issued: IssuedCertificate) throws {
        try FileIO.makeDirectories(directory)
        try FileIO.writeAtomically(serverKeyPath, issued.privateKeyPEM, mode: 0o600)
        try FileIO.writeAtomically(serverCertificatePath, issued.certificatePEM, mode: 0o644)
    }
}

/// A failed file operation, with errno's text.
public struct FileError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let operation: String
    public let errno: Int32
    public var description: String { "\(operation) \(path): \(String(cString: strerror(errno)))" }
}

/// Small POSIX file helpers (no Foundation): the project's one atomic file writer.
public enum FileIO {
    public static func readIfExists(_ path: String) throws(FileError) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw FileError(path: path, operation: "open", errno: errno)
        }
        defer { _ = Glibc.close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(path: path, operation: "read", errno: errno)
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes to a temporary file created with `mode` (so a key is never briefly world-readable),
    /// then renames it over `path`.
    public static func writeAtomically(_ path: String, _ text: String, mode: mode_t) throws(FileError) {
        let temporary = "\(path).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw FileError(path: temporary, operation: "create", errno: errno) }
        var failure: FileError?
        if fchmod(fd, mode) != 0 { failure = FileError(path: temporary, operation: "chmod", errno: errno) }
        var bytes = Array(text.utf8)
        var offset = 0
        while failure == nil && offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                failure = FileError(path: temporary, operation: "write", errno: errno)
            } else {
                offset += n
            }
        }
        if failure == nil && fsync(fd) != 0 { failure = FileError(path: temporary, operation: "fsync", errno: errno) }
        _ = Glibc.close(fd)
        if failure == nil && rename(temporary, path) != 0 {
            failure = FileError(path: path, operation: "rename", errno: errno)
        }
        if let failure {
            unlink(temporary)
            throw failure
        }
    }

    /// `mkdir -p` with 0700 for created folders (they hold private keys).
    static func makeDirectories(_ path: String) throws(FileError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST {
                throw FileError(path: prefix, operation: "mkdir", errno: errno)
            }
            prefix += "/"
        }
    }
}
