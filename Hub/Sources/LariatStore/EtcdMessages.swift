import Foundation

/// The etcd v3 JSON gateway's message shapes (grpc-gateway's mapping of etcd's protobufs, as
/// etcd 3.4 serves them under `/v3/`): keys and values are base64, 64-bit integers are strings,
/// and fields at their default value (false, 0, PUT) are left out, so every field is optional.
enum Etcd {
    struct Header: Codable {
        var revision: String?
    }

    struct KeyValue: Codable {
        var key: String?
        var value: String?
        var create_revision: String?
        var mod_revision: String?
        var version: String?
    }

    struct RangeRequest: Codable {
        var key: String
        var range_end: String?
        var limit: String?
        var count_only: Bool?
        /// Read at this past revision (etcd refuses one it has compacted).
        var revision: String?
    }

    struct RangeResponse: Codable {
        var header: Header?
        var kvs: [KeyValue]?
        var more: Bool?
    }

    struct PutRequest: Codable {
        var key: String
        var value: String
    }

    struct DeleteRangeRequest: Codable {
        var key: String
        var prev_kv: Bool?
    }

    struct DeleteRangeResponse: Codable {
        var header: Header?
        var deleted: String?
        var prev_kvs: [KeyValue]?
    }

    /// A txn guard: `target` is VERSION, CREATE or MOD; `result` EQUAL, GREATER, LESS or NOT_EQUAL.
    struct Compare: Codable {
        var target: String
        var key: String
        var result: String
        var version: String?
        var create_revision: String?
        var mod_revision: String?
    }

    struct RequestOp: Codable {
        var request_range: RangeRequest?
        var request_put: PutRequest?
        var request_delete_range: DeleteRangeRequest?
    }

    struct ResponseOp: Codable {
        var response_range: RangeResponse?
        var response_delete_range: DeleteRangeResponse?
    }

    struct TxnRequest: Codable {
        var compare: [Compare]
        var success: [RequestOp]
        var failure: [RequestOp]
    }

    struct TxnResponse: Codable {
        var header: Header?
        var succeeded: Bool?
        var responses: [ResponseOp]?
    }

    struct CompactionRequest: Codable {
        var revision: String
        var physical: Bool?
    }

    struct WatchCreate: Codable {
        var key: String
        var range_end: String?
        var start_revision: String?
        var prev_kv: Bool?
        var progress_notify: Bool?
    }

    struct WatchRequest: Codable {
        var create_request: WatchCreate
    }

    struct Event: Codable {
        /// Absent for PUT (the protobuf default); "DELETE" otherwise.
        var type: String?
        var kv: KeyValue?
        var prev_kv: KeyValue?
    }

    struct WatchResult: Codable {
        var header: Header?
        var created: Bool?
        var canceled: Bool?
        var compact_revision: String?
        var cancel_reason: String?
        var events: [Event]?
    }

    /// One line of the watch stream: a result, or an error the gateway reports in the stream.
    struct WatchMessage: Codable {
        var result: WatchResult?
        var error: GatewayError?
    }

    /// What the gateway answers instead of a message when a call fails.
    struct GatewayError: Codable {
        var error: String?
        var message: String?
        var code: Int?
    }
}

extension Optional where Wrapped == String {
    /// An etcd int64 field (a JSON string), 0 when absent.
    var int64: Int64 { self.flatMap { Int64($0) } ?? 0 }
}
