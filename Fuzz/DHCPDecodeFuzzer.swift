// libFuzzer entry for the DHCP decoder and the client state machine. Built by
// scripts/fuzz-dhcp with `swiftc -sanitize=fuzzer,address` together with the
// DHCP codec and the address types it uses.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDHCPDecode(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let message = try? DHCPMessage.decode(bytes) else { return 0 }
    // Whatever decodes must encode, and decode again to the same message.
    guard let again = try? DHCPMessage.decode(message.encode()), again == message else {
        fatalError("decode(encode(m)) != m for \(bytes)")
    }
    // And no reply may crash a client in any state.
    let goals: [ClientMachine.Goal] = [.discover, .initReboot(message.yiaddr), .renew(address: message.ciaddr, server: message.siaddr)]
    for goal in goals {
        var machine = ClientMachine(goal: goal, mac: message.chaddr, xid: message.xid, policy: RetransmitPolicy(attempts: 2), jitter: [0])
        _ = machine.start(now: 0)
        _ = machine.receive(message, now: 1)
        _ = machine.receive(message, now: 2)
        _ = machine.timeout(now: 10)
    }
    return 0
}
