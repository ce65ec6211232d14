/// The input half: frames from the peer, dispatched by type (remotedialer's session_serve).
extension Session {
    /// Feeds bytes from the transport. Events are raised on the delegate as frames complete.
    /// After a fatal violation the session has ended and further input is ignored.
    public func receive(_ bytes: UnsafeRawBufferPointer, now: UInt64) {
        guard state != .ended else { return }
        self.now = now
        lastReceivedAt = now
        do {
            try decoder.feed(bytes) { (h, payload) throws(ProtocolViolation) -> Bool in
                try self.dispatch(h, payload)
                guard self.control.replies <= self.config.maxQueuedControlFrames else {
                    throw ProtocolViolation(.memoryLimit,
                        "peer sent more than \(self.config.maxQueuedControlFrames) frames needing a reply without reading the replies")
                }
                return self.state != .ended
            }
        } catch {
            fail(error)
        }
    }

    private func dispatch(_ h: FrameHeader, _ payload: UnsafeRawBufferPointer) throws(ProtocolViolation) {
        stats.framesReceived += 1
        // DATA is the hot path: handled without building a Frame value.
        if h.type == FrameType.data.rawValue {
            guard state == .established || state == .draining else {
                throw ProtocolViolation(.protocolError, "DATA before the handshake completed")
            }
            try FrameRules.checkHeader(h, maxPayload: config.maxFramePayload)
            try receiveData(h, payload)
            return
        }
        let frame: Frame
        do {
            frame = try Frame.decode(header: h, payload: payload, maxPayload: config.maxFramePayload)
        } catch {
            // A malformed frame for a live stream costs only that stream; before the handshake,
            // or on an id never used, it is the peer's confusion about the whole session.
            if error.isConnectionError || error.streamID == 0 || state == .handshaking || slot(error.streamID) == nil {
                throw ProtocolViolation(error.code, error.message, stream: error.streamID, connection: true)
            }
            rejectStream(error.streamID, error)
            return
        }
        if state == .handshaking {
            try handshake(frame)
            return
        }
        switch frame {
        case .hello, .welcome:
            throw ProtocolViolation(.protocolError, "handshake frame after the handshake")
        case .open(let id, let cls, let window, let target):
            try receiveOpen(id, cls, window, target)
        case .openOK(let id, let window):
            guard let s = try knownStream(id, h), slots[s].phase == .opening else {
                if let s = slot(id), slots[s].phase != .opening {
                    rejectStream(id, ProtocolViolation(.protocolError, "OPEN_OK for a stream that is not opening", stream: id, connection: false))
                }
                return
            }
            slots[s].phase = .open
            openingCount -= 1
            slots[s].sendCredit = Int(window)
            schedule(s)
            sendQueuedOpens()
            announceOutput()
            delegate.session(self, streamOpened: id)
        case .openFail(let id, let code, let message):
            guard let s = try knownStream(id, h) else { return }
            guard slots[s].phase == .opening else {
                rejectStream(id, ProtocolViolation(.protocolError, "OPEN_FAIL for a stream that is not opening", stream: id, connection: false))
                return
            }
            remove(s)
            delegate.session(self, streamOpenFailed: id, code: code, message: message)
        case .window(let id, let inc):
            if id == 0 {
                let wasBlocked = sessionSendCredit <= 0
                sessionSendCredit += Int(inc)
                guard sessionSendCredit <= ProtocolLimits.maxWindow else {
                    throw ProtocolViolation(.flowControlError, "session window overflow")
                }
                if wasBlocked && sessionSendCredit > 0 { announceOutput() }
            } else if let s = try knownStream(id, h) {
                let wasZero = slots[s].sendCredit <= 0
                slots[s].sendCredit += Int(inc)
                guard slots[s].sendCredit <= ProtocolLimits.maxWindow else {
                    rejectStream(id, ProtocolViolation(.flowControlError, "stream window overflow", stream: id, connection: false))
                    return
                }
                if wasZero { schedule(s); announceOutput() }
            }
        case .reset(let id, let code, let message):
            guard let s = try knownStream(id, h) else { return }
            if slots[s].phase == .awaitingAccept { pendingAccepts -= 1 }
            remove(s)
            delegate.session(self, streamReset: id, code: code, message: message)
        case .ping(let v):
            control.append(reply: .pong(opaque: v))
            announceOutput()
        case .pong(let v):
            guard v <= now, v >= startedAt else { return } // not one of ours; ignore
            let rtt = now - v
            smoothedRTT = smoothedRTT == 0 ? rtt : (smoothedRTT * 7 + rtt) / 8
            lastRTT = rtt
            if rtt > 0 && (minRTT == 0 || rtt < minRTT) { minRTT = rtt }
            pingOutstandingSince = 0
            delegate.session(self, roundTrip: rtt)
        case .goAway(let last, let code, let reason):
            receiveGoAway(last, code, reason)
        case .data:
            break // handled above
        case .ext:
            stats.ignoredFrames += 1
        }
    }

    private func handshake(_ frame: Frame) throws(ProtocolViolation) {
        switch frame {
        case .hello(let hello) where !isClient:
            self.hello = hello
            guard hello.minVersion <= ProtocolLimits.version, hello.maxVersion >= ProtocolLimits.version else {
                throw ProtocolViolation(.unsupportedVersion,
                    "hub speaks protocol \(ProtocolLimits.version), agent offered \(hello.minVersion)-\(hello.maxVersion)")
            }
            switch delegate.session(self, authenticate: hello) {
            case .refuse(let code, let reason):
                throw ProtocolViolation(code, reason)
            case .accept(let sessionID):
                try validate(window: hello.initialStreamWindow, sessionWindow: hello.sessionWindow, maxFrame: hello.maxFramePayload)
                var w = Welcome()
                w.capabilities = hello.capabilities.intersection(config.compression ? [.lz4, .streamClasses, .windowAutoTuning] : [.streamClasses, .windowAutoTuning])
                w.initialStreamWindow = UInt32(config.initialStreamWindow)
                w.sessionWindow = UInt32(config.sessionWindow)
                w.maxFramePayload = UInt32(config.maxFramePayload)
                w.maxStreams = UInt32(config.maxStreams)
                w.sessionID = sessionID
                w.pingIntervalMillis = UInt32(config.pingIntervalNanos / 1_000_000)
                w.software = config.software
                welcome = w
                control.append(frame: .welcome(w))
                try settle(capabilities: w.capabilities, peerWindow: hello.initialStreamWindow,
                           peerSessionWindow: hello.sessionWindow, peerMaxFrame: hello.maxFramePayload)
            }
        case .welcome(let w) where isClient:
            guard w.version == ProtocolLimits.version else {
                throw ProtocolViolation(.unsupportedVersion, "hub chose protocol \(w.version), which this agent does not speak")
            }
            welcome = w
            if w.pingIntervalMillis > 0 { pingInterval = UInt64(w.pingIntervalMillis) * 1_000_000 }
            try settle(capabilities: w.capabilities, peerWindow: w.initialStreamWindow,
                       peerSessionWindow: w.sessionWindow, peerMaxFrame: w.maxFramePayload)
        case .goAway(_, let code, let reason):
            // A refusal during the handshake (bad token, wrong version).
            end(.remoteError(code, reason), streamCode: code, message: reason)
        case .ext:
            stats.ignoredFrames += 1
        default:
            throw ProtocolViolation(.protocolError, isClient ? "expected WELCOME from the hub" : "expected HELLO from the agent")
        }
    }

    private func validate(window: UInt32, sessionWindow: UInt32, maxFrame: UInt32) throws(ProtocolViolation) {
        guard Int(maxFrame) >= ProtocolLimits.minMaxFramePayload, Int(maxFrame) <= ProtocolLimits.maxMaxFramePayload else {
            throw ProtocolViolation(.protocolError, "maxFramePayload \(maxFrame) outside \(ProtocolLimits.minMaxFramePayload)...\(ProtocolLimits.maxMaxFramePayload)")
        }
        guard window > 0, Int(window) <= ProtocolLimits.maxWindow,
              sessionWindow > 0, Int(sessionWindow) <= ProtocolLimits.maxWindow else {
            throw ProtocolViolation(.flowControlError, "handshake window out of range")
        }
    }

    private func settle(capabilities: Capabilities, peerWindow: UInt32, peerSessionWindow: UInt32,
                        peerMaxFrame: UInt32) throws(ProtocolViolation) {
        try validate(window: peerWindow, sessionWindow: peerSessionWindow, maxFrame: peerMaxFrame)
        compressionEnabled = config.compression && capabilities.contains(.lz4)
        autoTuning = capabilities.contains(.windowAutoTuning)
        peerMaxFramePayload = Int(peerMaxFrame)
        sessionSendCredit = Int(peerSessionWindow)
        sessionRecvCredit = config.sessionWindow
        decoder.maxPayload = config.maxFramePayload
        state = .established
        // A first RTT sample right away: window auto-tuning has no yardstick without one.
        ping()
        announceOutput()
        delegate.sessionEstablished(self)
    }

    private func receiveOpen(_ id: UInt32, _ cls: StreamClass, _ window: UInt32, _ target: String) throws(ProtocolViolation) {
        let peerParity: UInt32 = isClient ? 0 : 1
        guard id & 1 == peerParity else {
            throw ProtocolViolation(.protocolError, "OPEN with a stream id of the wrong parity (\(id))")
        }
        guard id > highestPeerID else {
            throw ProtocolViolation(.protocolError, "OPEN reuses stream id \(id)")
        }
        highestPeerID = id
        if localGoAway || state == .draining {
            control.append(reply: .openFail(stream: id, code: .refused, message: "session is draining"))
            announceOutput()
            return
        }
        guard index.count < config.maxStreams else {
            control.append(reply: .openFail(stream: id, code: .refused, message: "too many streams (limit \(config.maxStreams))"))
            announceOutput()
            return
        }
        guard pendingAccepts < config.maxPendingOpens else {
            control.append(reply: .openFail(stream: id, code: .refused, message: "too many pending opens (limit \(config.maxPendingOpens))"))
            announceOutput()
            return
        }
        var r = StreamRecord(id: id, streamClass: cls, phase: .awaitingAccept)
        r.sendCredit = Int(window)
        r.mayCompress = !config.uncompressedTargets.contains(target)
        insert(r)
        pendingAccepts += 1
        stats.streamsAccepted += 1
        delegate.session(self, openRequested: id, target: target, streamClass: cls)
    }

    private func receiveData(_ h: FrameHeader, _ payload: UnsafeRawBufferPointer) throws(ProtocolViolation) {
        let id = h.streamID
        var bytes = payload
        var decodedLength = payload.count
        let compressed = h.flags & FrameFlags.lz4 != 0
        if compressed {
            guard compressionEnabled else {
                throw ProtocolViolation(.protocolError, "LZ4-compressed DATA, but compression was not negotiated")
            }
            guard payload.count >= 5 else {
                throw ProtocolViolation(.frameSizeError, "compressed DATA shorter than 5 bytes")
            }
            decodedLength = Int(UInt32(bigEndian: payload.loadUnaligned(as: UInt32.self)))
            guard decodedLength <= config.maxFramePayload else {
                throw ProtocolViolation(.frameSizeError, "compressed DATA decodes to \(decodedLength) bytes, limit \(config.maxFramePayload)")
            }
        }
        // Session credit is charged even for streams we no longer know: the peer sent it
        // in good faith before it saw our RESET.
        guard decodedLength <= sessionRecvCredit else {
            throw ProtocolViolation(.flowControlError, "DATA exceeds the session window by \(decodedLength - sessionRecvCredit) bytes")
        }
        sessionRecvCredit -= decodedLength
        guard let s = try knownStream(id, h) else {
            sessionUnannounced += decodedLength
            returnSessionCreditIfDue()
            return
        }
        guard slots[s].phase == .open, !slots[s].remoteFinished else {
            sessionUnannounced += decodedLength
            returnSessionCreditIfDue()
            rejectStream(id, ProtocolViolation(.streamClosed,
                slots[s].remoteFinished ? "DATA after FIN" : "DATA before OPEN_OK", stream: id, connection: false))
            return
        }
        guard decodedLength <= slots[s].recvCredit else {
            sessionUnannounced += decodedLength
            returnSessionCreditIfDue()
            rejectStream(id, ProtocolViolation(.flowControlError, "DATA exceeds the stream window", stream: id, connection: false))
            return
        }
        if compressed {
            let block = UnsafeRawBufferPointer(rebasing: payload[4...])
            guard LZ4Codec.decompress(block, into: scratch, decodedLength: decodedLength) else {
                sessionUnannounced += decodedLength
                returnSessionCreditIfDue()
                rejectStream(id, ProtocolViolation(.compressionError, "LZ4 block does not decode to \(decodedLength) bytes", stream: id, connection: false))
                return
            }
            bytes = UnsafeRawBufferPointer(start: scratch, count: decodedLength)
        }
        slots[s].recvCredit -= decodedLength
        if id != lastDataStreamID {
            if lastDataStreamID != 0 { interleavedAt = now }
            lastDataStreamID = id
        }
        slots[s].delivered += decodedLength
        sessionDelivered += decodedLength
        stats.dataBytesReceived += decodedLength
        let fin = h.flags & FrameFlags.fin != 0
        if fin { slots[s].remoteFinished = true }
        if decodedLength > 0 {
            deliveryIsInInput = !compressed && !decoder.deliveringReassembled
            delegate.session(self, streamData: id, bytes: bytes)
        }
        if fin {
            delegate.session(self, streamFinished: id)
            if let s = slot(id), slots[s].isDone { closeStream(s) }
        }
    }

    private func receiveGoAway(_ last: UInt32, _ code: ErrorCode, _ reason: String) {
        if code != .noError && code != .goingAway {
            end(.remoteError(code, reason), streamCode: code, message: reason)
            return
        }
        peerGoAway = true
        if state == .established { state = .draining }
        // Our streams above `last` were never seen by the peer: fail them so callers retry elsewhere.
        let unseen = index.keys.filter { $0 > last && ($0 & 1) == (isClient ? 1 : 0) }.sorted()
        for id in unseen {
            guard let s = slot(id) else { continue }
            remove(s)
            delegate.session(self, streamOpenFailed: id, code: .refused, message: "peer is going away")
        }
        delegate.session(self, goAwayReceived: code, reason: reason)
        endIfDrained()
    }

    /// Looks a stream up for a frame. Unknown ids that were used before are tolerated (frames
    /// cross a RESET in flight); ids never opened are a protocol violation.
    private func knownStream(_ id: UInt32, _ h: FrameHeader) throws(ProtocolViolation) -> Int? {
        if let s = slot(id) { return s }
        let peerParity: UInt32 = isClient ? 0 : 1
        let neverUsed = (id & 1 == peerParity) ? id > highestPeerID : id >= nextLocalID
        if neverUsed {
            throw ProtocolViolation(.protocolError, "frame type 0x\(String(h.type, radix: 16)) on idle stream \(id)")
        }
        stats.ignoredFrames += 1
        return nil
    }

    /// Ends one stream because of the peer's mistake: RESET to the peer, event to the app.
    func rejectStream(_ id: UInt32, _ v: ProtocolViolation) {
        control.append(reply: .reset(stream: id, code: v.code, message: v.message))
        announceOutput()
        stats.streamsReset += 1
        if let s = slot(id) {
            if slots[s].phase == .awaitingAccept { pendingAccepts -= 1 }
            remove(s)
            delegate.session(self, streamReset: id, code: v.code, message: v.message)
        }
    }

    func closeStream(_ s: Int) {
        let id = slots[s].id
        remove(s)
        delegate.session(self, streamClosed: id)
    }
}
