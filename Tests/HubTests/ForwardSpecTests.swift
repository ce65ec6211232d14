import LariatHub
import LariatProtocol
import Testing

/// `--forward LISTEN=CLUSTER/TARGET[,interactive|,bulk]`: the parser behind the option.
@Suite struct ForwardSpecTests {
    @Test func parsesTargetsAndTheStreamClass() throws {
        let plain = try #require(ForwardSpec(parsing: "127.0.0.1:0=local/127.0.0.1:22"))
        #expect(plain.listenHost == "127.0.0.1" && plain.listenPort == 0 && plain.cluster == "local")
        #expect(plain.target == "tcp:127.0.0.1:22")
        #expect(plain.streamClass == .bulk)

        let shell = try #require(ForwardSpec(parsing: "127.0.0.1:2222=edge/svc:default/ssh:22,interactive"))
        #expect(shell.target == "svc:default/ssh:22")
        #expect(shell.streamClass == .interactive)
        #expect(shell.description == "127.0.0.1:2222=edge/svc:default/ssh:22,interactive")
        #expect(ForwardSpec(parsing: shell.description) == shell)

        let v6 = try #require(ForwardSpec(parsing: "[::1]:0=local/[::1]:5432,bulk"))
        #expect(v6.listenHost == "[::1]" && v6.target == "tcp:[::1]:5432" && v6.streamClass == .bulk)
    }

    @Test func rejectsWhatItCannotRead() {
        for bad in ["127.0.0.1:0=local/127.0.0.1:22,fast", "127.0.0.1:0=local/127.0.0.1:22,", "127.0.0.1=local/x:1",
                    "127.0.0.1:0=/127.0.0.1:22", "127.0.0.1:0local/127.0.0.1:22", ":0=local/127.0.0.1:22"] {
            #expect(ForwardSpec(parsing: bad) == nil, "\(bad)")
        }
    }
}
