#if canImport(Glibc)
import Glibc
#endif
import CLinux
import HostIO
import NetkeepCore

/// One ARP message for IPv4 over Ethernet (RFC 826): the 28 bytes after
/// the Ethernet header.
public struct ARPPacket: Equatable, Sendable {
    public enum Operation: UInt16, Sendable { case request = 1, reply = 2 }

    public var operation: Operation
    public var senderMAC: MACAddress
    public var senderIP: IPv4Address
    public var targetMAC: MACAddress
    public var targetIP: IPv4Address

    public init(operation: Operation, senderMAC: MACAddress, senderIP: IPv4Address, targetMAC: MACAddress, targetIP: IPv4Address) {
        self.operation = operation
        self.senderMAC = senderMAC
        self.senderIP = senderIP
        self.targetMAC = targetMAC
        self.targetIP = targetIP
    }

    public static let size = 28

    /// RFC 5227 2.1.1: a probe asks who has `address`, from no address (sender IP 0).
    public static func probe(for address: IPv4Address, from mac: MACAddress) -> ARPPacket {
        ARPPacket(operation: .request, senderMAC: mac, senderIP: IPv4Address(0), targetMAC: MACAddress(bytes: [0, 0, 0, 0, 0, 0]) ?? mac, targetIP: address)
    }

    public func encode() -> [UInt8] {
        [0, 1, 0x08, 0x00, 6, 4] + [UInt8(operation.rawValue >> 8), UInt8(operation.rawValue & 0xff)]
            + senderMAC.bytes + senderIP.bytes + targetMAC.bytes + targetIP.bytes
    }

    /// nil for anything that is not an Ethernet/IPv4 request or reply.
    public static func decode(_ bytes: [UInt8]) -> ARPPacket? {
        guard bytes.count >= size, bytes[0] == 0, bytes[1] == 1, bytes[2] == 0x08, bytes[3] == 0x00, bytes[4] == 6, bytes[5] == 4,
              let operation = Operation(rawValue: UInt16(bytes[6]) << 8 | UInt16(bytes[7])),
              let senderMAC = MACAddress(bytes: Array(bytes[8..<14])), let targetMAC = MACAddress(bytes: Array(bytes[18..<24])),
              let senderIP = IPv4Address(bytes: Array(bytes[14..<18])), let targetIP = IPv4Address(bytes: Array(bytes[24..<28])) else { return nil }
        return ARPPacket(operation: operation, senderMAC: senderMAC, senderIP: senderIP, targetMAC: targetMAC, targetIP: targetIP)
    }
}

/// RFC 5227 address conflict detection, for an address a DHCP server gave
/// that differs from the one the client had (a first lease is the server's
/// to check: dnsmasq pings an address before it offers it).
public enum ARPProbe {
    /// RFC 5227 section 1.1's constants, in seconds.
    public struct Policy: Equatable, Sendable {
        public var probeWait = 1.0
        public var probeCount = 3
        public var probeMin = 1.0
        public var probeMax = 2.0
        public var announceWait = 2.0

        public init() {}
    }

    /// Whether `packet`, seen while probing `address` from `mac`, says that
    /// another host uses the address (RFC 5227 2.1.1): any ARP whose sender
    /// is the address, or another host's probe for it.
    public static func conflict(_ packet: ARPPacket, probing address: IPv4Address, from mac: MACAddress) -> Bool {
        guard packet.senderMAC != mac else { return false }
        if packet.senderIP == address { return true }
        return packet.operation == .request && packet.senderIP.value == 0 && packet.targetIP == address
    }

    /// The moments (seconds from the start) at which the probes go out, and
    /// the end of the wait after the last; `random` gives values in 0...1.
    public static func schedule(_ policy: Policy, random: () -> Double) -> (probes: [Double], end: Double) {
        var t = random() * policy.probeWait
        var probes: [Double] = []
        for i in 0..<policy.probeCount {
            probes.append(t)
            if i < policy.probeCount - 1 { t += policy.probeMin + random() * (policy.probeMax - policy.probeMin) }
        }
        return (probes, t + policy.announceWait)
    }

    public enum Outcome: Equatable, Sendable {
        case free
        /// Another host answered for the address.
        case inUse(by: MACAddress)
    }

    /// Probes `address` on `socket` and listens until the schedule ends or
    /// a conflict is seen.
    public static func run(_ address: IPv4Address, mac: MACAddress, on socket: ARPSocket, policy: Policy = Policy()) throws(SystemError) -> Outcome {
        var rng = SystemRandomNumberGenerator()
        let (probes, end) = schedule(policy) { Double.random(in: 0...1, using: &rng) }
        let start = ExchangeLoop.now()
        var sent = 0
        let probe = ARPPacket.probe(for: address, from: mac).encode()
        while !Interruption.isRequested {
            let now = ExchangeLoop.now() - start
            while sent < probes.count, probes[sent] <= now {
                try socket.send(probe)
                sent += 1
            }
            if now >= end { return .free }
            let next = sent < probes.count ? probes[sent] : end
            var fd = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&fd, 1, Int32(max(1, min(250, (next - now) * 1000)).rounded(.up)))
            while let bytes = socket.receive() {
                if let packet = ARPPacket.decode(bytes), conflict(packet, probing: address, from: mac) { return .inUse(by: packet.senderMAC) }
            }
        }
        return .free
    }
}

/// An ARP socket of one interface (AF_PACKET, SOCK_DGRAM: the kernel adds
/// and strips the Ethernet header), opened in the calling thread's
/// namespace. Needs CAP_NET_RAW.
public final class ARPSocket: @unchecked Sendable {
    public let fd: Int32
    public let interface: String
    private let index: Int32

    public init(interface: String) throws(SystemError) {
        let index = Int32(if_nametoindex(interface))
        guard index > 0 else { throw SystemError("if_nametoindex", interface, errno: errno) }
        let protocolARP = UInt16(ETH_P_ARP).bigEndian
        let fd = socket(AF_PACKET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), Int32(protocolARP))
        guard fd >= 0 else { throw SystemError("socket(AF_PACKET, SOCK_DGRAM, ETH_P_ARP)", interface, errno: errno) }
        var address = sockaddr_ll()
        address.sll_family = UInt16(AF_PACKET)
        address.sll_protocol = protocolARP
        address.sll_ifindex = index
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_ll>.size)) }
        }
        guard rc == 0 else {
            let error = SystemError("bind ARP socket", interface, errno: errno)
            close(fd)
            throw error
        }
        self.fd = fd
        self.interface = interface
        self.index = index
    }

    /// Sends an ARP message to the Ethernet broadcast address.
    public func send(_ bytes: [UInt8]) throws(SystemError) {
        var address = sockaddr_ll()
        address.sll_family = UInt16(AF_PACKET)
        address.sll_protocol = UInt16(ETH_P_ARP).bigEndian
        address.sll_ifindex = index
        address.sll_halen = 6
        withUnsafeMutableBytes(of: &address.sll_addr) { raw in for i in 0..<6 { raw[i] = 0xff } }
        let n = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_ll>.size))
                }
            }
        }
        if n < 0 { throw SystemError("send ARP probe", interface, errno: errno) }
    }

    /// One message if any is waiting.
    public func receive() -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 1500)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n > 0 ? Array(buffer[..<n]) : nil
    }

    deinit { close(fd) }
}
