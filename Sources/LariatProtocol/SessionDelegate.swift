/// Events a session raises while it processes input or output. Calls arrive synchronously from
/// inside `receive`, `produce`, `tick` and the stream calls; the delegate may call back into the
/// session (write, consumed, accept, reset…) from any of them.
public protocol SessionDelegate: AnyObject {
    /// Server side: decide on an agent's HELLO.
    func session(_ session: Session, authenticate hello: Hello) -> HandshakeDecision
    /// The handshake completed; streams may be opened.
    func sessionEstablished(_ session: Session)
    /// The peer asks for a stream to `target`; answer with `accept` or `refuse`, now or later.
    func session(_ session: Session, openRequested stream: UInt32, target: String, streamClass: StreamClass)
    /// Our OPEN was accepted.
    func session(_ session: Session, streamOpened stream: UInt32)
    /// Our OPEN was refused; the stream is gone.
    func session(_ session: Session, streamOpenFailed stream: UInt32, code: ErrorCode, message: String)
    /// Bytes for the application. The buffer is valid only during the call (when
    /// `session.deliveryIsInInput`, until the caller of `receive` reuses its input); report them with
    /// `consumed` once they have left the process (that is what returns flow-control credit).
    func session(_ session: Session, streamData stream: UInt32, bytes: UnsafeRawBufferPointer)
    /// The peer will send no more on this stream (half-close).
    func session(_ session: Session, streamFinished stream: UInt32)
    /// The stream was reset, by the peer or by a local error; it is gone.
    func session(_ session: Session, streamReset stream: UInt32, code: ErrorCode, message: String)
    /// Both directions finished cleanly; the stream is gone.
    func session(_ session: Session, streamClosed stream: UInt32)
    /// The stream's send buffer has room again after `write` reported it full.
    func session(_ session: Session, streamWritable stream: UInt32)
    /// Output is waiting: call `produce` when the transport can take bytes.
    func sessionHasOutput(_ session: Session)
    /// The peer is draining (GOAWAY with NO_ERROR or GOING_AWAY): open no new streams here.
    func session(_ session: Session, goAwayReceived code: ErrorCode, reason: String)
    /// A round trip was measured.
    func session(_ session: Session, roundTrip nanos: UInt64)
    /// The session is over. Flush what `produce` still returns (a GOAWAY), then close.
    func session(_ session: Session, ended: SessionEnd)
}

extension SessionDelegate {
    public func session(_ session: Session, authenticate hello: Hello) -> HandshakeDecision {
        .refuse(.authenticationFailed, reason: "this endpoint does not accept agents")
    }
    public func sessionEstablished(_ session: Session) {}
    public func session(_ session: Session, streamOpened stream: UInt32) {}
    public func session(_ session: Session, streamWritable stream: UInt32) {}
    public func session(_ session: Session, goAwayReceived code: ErrorCode, reason: String) {}
    public func session(_ session: Session, roundTrip nanos: UInt64) {}
}
