package lab

// labZHV6 is the Chinese narration of what the labs say only over IPv6
// (-6): the frame, and the mss-mtu lab's IPv6 story (MSS = MTU − 60, no
// fragmentation on the way, ICMPv6 "分组过大" Packet Too Big, RFC 8201).
var labZHV6 = map[string]string{
	", over IPv6": "，经 IPv6",
	"ustack lab -6: the textbook, live, over IPv6": "ustack lab -6：教科书上的故事，现场运行，经 IPv6",

	// mss-mtu: the list and the answer.
	"a smaller MTU at one end lowers the segment size both use; a router with a smaller MTU sends ICMPv6 \"Packet Too Big\" and the sender shrinks its segments mid-connection":                                                                                                                                                       "一端较小的 MTU 使双方都用较小的报文段；MTU 较小的路由器发回 ICMPv6“分组过大”，发送方在连接中途缩小报文段",
	"Each side announces MSS = its MTU − 60 (40 bytes of IPv6 header, 20 of TCP) and sends segments no larger than the other announced; no router fragments an IPv6 packet: one whose next hop has a smaller MTU drops it and sends ICMPv6 \"Packet Too Big\" with that MTU (RFC 8201), and the sender shrinks its segments at once.": "每一方通告 MSS = 自己的 MTU − 60（IPv6 首部 40 字节，TCP 首部 20 字节），发送的报文段不超过对方通告的 MSS；路由器从不对 IPv6 分组分片：下一跳 MTU 较小的路由器丢弃分组并发回带该 MTU 的 ICMPv6“分组过大”（RFC 8201），发送方立即缩小报文段。",

	// mss-mtu in memory.
	"the client's link has MTU 1500: its SYN announces MSS 1500 − 60 = 1440 (40 bytes of IPv6 header, 20 of TCP)":                                                              "客户链路的 MTU 为 1500：它的 SYN 通告 MSS 1500 − 60 = 1440（IPv6 首部 40 字节，TCP 首部 20 字节）",
	"the server's link has MTU %d, so it announces MSS %d; the client (MTU 1500, MSS 1440) sends with min(1440, %d) = %d (client %d, server %d)":                               "服务器链路的 MTU 为 %d，因此通告 MSS %d；客户（MTU 1500，MSS 1440）按 min(1440, %d) = %d 发送（客户 %d，服务器 %d）",
	"with MTU 1500 at both ends the server's first segments carry 1440 − 12 = 1428 bytes (%d)":                                                                                 "两端 MTU 都是 1500 时，服务器最初的报文段携带 1440 − 12 = 1428 字节（%d）",
	"the router drops every packet over %d bytes and answers each with ICMPv6 \"Packet Too Big\" (%d dropped, %d ICMPv6)":                                                      "路由器丢弃每个超过 %d 字节的分组，并对每个回送 ICMPv6“分组过大”（丢弃 %d 个，ICMPv6 %d 个）",
	"now both links have MTU 1500 (MSS 1440), but the path crosses a router (%v) whose next hop has MTU %d, IPv6's minimum":                                                    "现在两端链路的 MTU 都是 1500（MSS 1440），但路径经过一个路由器（%v），其下一跳 MTU 为 %d，即 IPv6 的最小值",
	"the server sends %d bytes; an IPv6 packet is never fragmented on the way, so a router sends back what does not fit (path MTU discovery, RFC 8201)":                        "服务器发送 %d 字节；IPv6 分组在途中从不分片，所以路由器把放不下的分组退回（路径 MTU 发现，RFC 8201）",
	"the router's next hop has MTU %d: this %d-byte packet cannot pass, and IPv6 routers never fragment; the router drops it and sends ICMPv6 \"Packet Too Big, MTU %d\" back": "路由器下一跳的 MTU 为 %d：这个 %d 字节的分组无法通过，而 IPv6 路由器从不分片；路由器丢弃它并回送 ICMPv6“分组过大，MTU %d”",
	"the ICMPv6 reaches the server: path MTU %d, MSS %d; it resends what is in flight in segments of %d bytes at once, without cutting its window":                             "ICMPv6 到达服务器：路径 MTU %d，MSS %d；它立即把在途数据以 %d 字节的报文段重传，不缩小窗口",

	// mss-mtu with --tun.
	"the router's next hop has MTU %d: this %d-byte packet cannot pass; ICMPv6 \"Packet Too Big, MTU %d\" goes back to the kernel": "路由器下一跳的 MTU 为 %d：这个 %d 字节的分组无法通过；ICMPv6“分组过大，MTU %d”被送回内核",
	"ustack announces MSS %d (as a host whose link has MTU %d); the kernel, on a TUN with MTU 1500, announces 1440":                "ustack 通告 MSS %d（如同链路 MTU 为 %d 的主机）；内核在 MTU 1500 的 TUN 上，通告 1440",
	"the kernel sent another %d bytes; after the ICMPv6 its segments carry at most %d":                                             "内核又发送了 %d 字节；收到 ICMPv6 后其报文段最多 %d 字节",
	"the kernel takes the ICMPv6's MTU: its segments shrink to %d − 60 − %d = %d bytes (%d) and all %d bytes arrive":               "内核采用 ICMPv6 给出的 MTU：报文段缩小到 %d − 60 − %d = %d 字节（%d），全部 %d 字节到达",
}

func init() {
	for k, v := range labZHV6 {
		labZH[k] = v
	}
}
