import CSQLite
import Foundation

/// One SQLite connection. All of the store's pointer casting to and from SQLite's C API lives in
/// this file (connections, statements, bindings, columns). Not thread-safe: its owner serialises
/// every use (the backend keeps each connection inside a `Mutex`). Errors name the database file
/// and carry SQLite's own message (`sqlite3_errmsg`), never a bare result code.
final class SQLiteConnection {
    let path: String
    private var db: OpaquePointer?

    /// Opens (creating if `readOnly` is false) the database at `path`.
    init(path: String, readOnly: Bool, busyTimeout: Duration) throws(StoreFailure) {
        self.path = path
        // NOMUTEX: SQLite's own per-connection locking is redundant under our mutex.
        let flags = (readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_close_v2(db)
            db = nil
            throw .unavailable("cannot open the store database \(path): \(message)")
        }
        let ms = busyTimeout.components.seconds * 1000 + busyTimeout.components.attoseconds / 1_000_000_000_000_000
        sqlite3_busy_timeout(db, Int32(clamping: ms))
    }

    deinit { close() }

    func close() {
        guard let db else { return }
        sqlite3_close_v2(db)  // _v2: statements still alive are finalized when they go
        self.db = nil
    }

    /// Runs SQL that returns no rows (pragmas, DDL, BEGIN/COMMIT).
    func execute(_ sql: String) throws(StoreFailure) {
        let rc = sqlite3_exec(db, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw failure("\(sql.prefix(60))") }
    }

    /// The first column of the first row of `sql`, as text (for `PRAGMA journal_mode=WAL`).
    func scalarText(_ sql: String) throws(StoreFailure) -> String? {
        let s = try prepare(sql)
        guard try s.step() else { return nil }
        return s.text(0)
    }

    func prepare(_ sql: String) throws(StoreFailure) -> SQLiteStatement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw failure("prepare \(sql.prefix(60))") }
        return SQLiteStatement(stmt, connection: self)
    }

    /// Rows changed by the last INSERT/UPDATE/DELETE.
    var changes: Int { Int(sqlite3_changes(db)) }

    /// Whether the last error was a constraint violation (a taken primary key).
    var lastErrorIsConstraint: Bool { sqlite3_errcode(db) == SQLITE_CONSTRAINT }

    /// `store <path>: <what>: <SQLite's message>`.
    func failure(_ what: String) -> StoreFailure {
        let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "database closed"
        return .unavailable("store \(path): \(what): \(message)")
    }
}

/// A prepared statement, reused across calls (reset after each use).
final class SQLiteStatement {
    private let stmt: OpaquePointer
    private unowned let connection: SQLiteConnection

    fileprivate init(_ stmt: OpaquePointer, connection: SQLiteConnection) {
        self.stmt = stmt
        self.connection = connection
    }

    deinit { sqlite3_finalize(stmt) }

    /// Binds parameters 1…n in order; call before the first `step`.
    func bind(_ values: SQLiteValue...) throws(StoreFailure) {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
        for (i, v) in values.enumerated() {
            let index = Int32(i + 1)
            let rc: Int32
            switch v {
            case .int(let n): rc = sqlite3_bind_int64(stmt, index, n)
            case .text(let s): rc = sqlite3_bind_text(stmt, index, s, -1, lariat_sqlite_transient())
            case .blob(let d):
                rc = d.withUnsafeBytes { raw in
                    // A zero-length blob still needs a non-null pointer to be a blob, not NULL.
                    sqlite3_bind_blob(stmt, index, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(raw.count),
                                      lariat_sqlite_transient())
                }
            case .null: rc = sqlite3_bind_null(stmt, index)
            }
            guard rc == SQLITE_OK else { throw connection.failure("bind parameter \(index)") }
        }
    }

    /// Advances to the next row: true if there is one, false when done.
    func step() throws(StoreFailure) -> Bool {
        switch sqlite3_step(stmt) {
        case SQLITE_ROW: return true
        case SQLITE_DONE:
            sqlite3_reset(stmt)
            return false
        default:
            let error = connection.failure(String(cString: sqlite3_sql(stmt)).prefix(60).description)
            sqlite3_reset(stmt)
            throw error
        }
    }

    /// Runs a statement that returns no rows; returns whether a constraint refused it.
    @discardableResult
    func run() throws(StoreFailure) -> Bool {
        let rc = sqlite3_step(stmt)
        defer { sqlite3_reset(stmt) }
        if rc == SQLITE_DONE || rc == SQLITE_ROW { return true }
        if rc & 0xff == SQLITE_CONSTRAINT { return false }
        throw connection.failure(String(cString: sqlite3_sql(stmt)).prefix(60).description)
    }

    /// Ends a read early (the statement may hold a read snapshot until reset).
    func reset() { sqlite3_reset(stmt) }

    func int(_ column: Int32) -> Int64 { sqlite3_column_int64(stmt, column) }

    func text(_ column: Int32) -> String {
        guard let p = sqlite3_column_text(stmt, column) else { return "" }
        return String(cString: p)
    }

    func blob(_ column: Int32) -> Data {
        let n = Int(sqlite3_column_bytes(stmt, column))
        guard n > 0, let p = sqlite3_column_blob(stmt, column) else { return Data() }
        return Data(bytes: p, count: n)
    }
}

enum SQLiteValue {
    case int(Int64)
    case text(String)
    case blob(Data)
    case null
}
