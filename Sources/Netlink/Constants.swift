/// rtnetlink ABI numbers (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h,
/// linux/if_addr.h, linux/veth.h). Stable kernel ABI; a unit test checks them
/// against the kernel headers through CLinux.
public enum RTNL {
    // Message types
    public static let NLMSG_NOOP: UInt16 = 1
    public static let NLMSG_ERROR: UInt16 = 2
    public static let NLMSG_DONE: UInt16 = 3
    public static let RTM_NEWLINK: UInt16 = 16
    public static let RTM_DELLINK: UInt16 = 17
    public static let RTM_GETLINK: UInt16 = 18
    public static let RTM_SETLINK: UInt16 = 19
    public static let RTM_NEWADDR: UInt16 = 20
    public static let RTM_DELADDR: UInt16 = 21
    public static let RTM_GETADDR: UInt16 = 22
    public static let RTM_NEWROUTE: UInt16 = 24
    public static let RTM_DELROUTE: UInt16 = 25
    public static let RTM_GETROUTE: UInt16 = 26

    // Header flags
    public static let NLM_F_REQUEST: UInt16 = 0x1
    public static let NLM_F_MULTI: UInt16 = 0x2
    public static let NLM_F_ACK: UInt16 = 0x4
    public static let NLM_F_DUMP_INTR: UInt16 = 0x10
    public static let NLM_F_DUMP: UInt16 = 0x300
    public static let NLM_F_REPLACE: UInt16 = 0x100
    public static let NLM_F_EXCL: UInt16 = 0x200
    public static let NLM_F_CREATE: UInt16 = 0x400
    public static let NLM_F_CAPPED: UInt16 = 0x100
    public static let NLM_F_ACK_TLVS: UInt16 = 0x200
    public static let NLMSGERR_ATTR_MSG: UInt16 = 1

    // Link attributes
    public static let IFLA_ADDRESS: UInt16 = 1
    public static let IFLA_IFNAME: UInt16 = 3
    public static let IFLA_MTU: UInt16 = 4
    public static let IFLA_LINK: UInt16 = 5
    public static let IFLA_MASTER: UInt16 = 10
    public static let IFLA_OPERSTATE: UInt16 = 16
    public static let IFLA_LINKINFO: UInt16 = 18
    public static let IFLA_NET_NS_FD: UInt16 = 28
    public static let IFLA_LINK_NETNSID: UInt16 = 37
    public static let IFLA_INFO_KIND: UInt16 = 1
    public static let IFLA_INFO_DATA: UInt16 = 2
    public static let VETH_INFO_PEER: UInt16 = 1

    // Address attributes
    public static let IFA_ADDRESS: UInt16 = 1
    public static let IFA_LOCAL: UInt16 = 2
    public static let IFA_BROADCAST: UInt16 = 4

    // Route attributes and values
    public static let RTA_DST: UInt16 = 1
    public static let RTA_OIF: UInt16 = 4
    public static let RTA_GATEWAY: UInt16 = 5
    public static let RTA_TABLE: UInt16 = 15
    public static let RT_TABLE_MAIN: UInt8 = 254
    public static let RTPROT_STATIC: UInt8 = 4
    public static let RT_SCOPE_UNIVERSE: UInt8 = 0
    public static let RT_SCOPE_LINK: UInt8 = 253
    public static let RTN_UNICAST: UInt8 = 1

    public static let AF_UNSPEC: UInt8 = 0
    public static let AF_INET: UInt8 = 2
    public static let IFF_UP: UInt32 = 0x1
    public static let IFF_LOWER_UP: UInt32 = 0x10000

    public static let SOL_NETLINK: Int32 = 270
    public static let NETLINK_CAP_ACK: Int32 = 10
    public static let NETLINK_EXT_ACK: Int32 = 11

    static let headerSize = 16
    static let ifinfomsgSize = 16
    static let ifaddrmsgSize = 8
    static let rtmsgSize = 12
    static let attributeTypeMask: UInt16 = 0x3fff
}
