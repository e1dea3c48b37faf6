package lab

// labZHTLS2 is the Chinese narration of the forward-secrecy and
// resumption labs (see labZH), with the textbook's terms: 前向保密,
// 会话恢复, 会话票据, 预主密钥, 主密钥, 会话密钥.
var labZHTLS2 = map[string]string{
	// Titles, descriptions, answers.
	"forward secrecy: RSA key exchange vs ECDHE":                                                          "前向保密：RSA 密钥交换与 ECDHE",
	"two recorded sessions, one server key: later the key decrypts the RSA session and not the ECDHE one": "录下两个会话，服务器用同一个私钥：事后这个私钥能解密 RSA 会话，却解不开 ECDHE 会话",
	"With RSA key exchange the server's private key decrypts a recorded pre-master secret, and so every recorded session; with ECDHE it only signed an ephemeral share, and the erased ephemeral keys take the session keys with them.": "RSA 密钥交换时，服务器私钥能解密录下的预主密钥，从而解密所有录下的会话；ECDHE 时私钥只用来对临时公钥签名，临时私钥用完即删，会话密钥随之无法恢复（前向保密）。",
	"session resumption: session ID and session ticket": "会话恢复：会话 ID 与会话票据",
	"a full handshake, then one resumed by session ID and one by ticket: which messages disappear, 2 round trips become 1; an unreadable ticket means a full handshake":                                                                            "一次完整握手，再用会话 ID 和会话票据各恢复一次：哪些消息不见了，两个往返变成一个；票据无法解密时回到完整握手",
	"Client and server already share the session's master secret, so an abbreviated handshake skips the certificate and the key exchange: the server sends ChangeCipherSpec and Finished at once, and data flows after 1 round trip instead of 2.": "客户和服务器已共享该会话的主密钥，简化握手省去证书和密钥交换：服务器立即发送 ChangeCipherSpec 和 Finished，一个往返（而不是两个）之后即可发送数据。",

	// forward-secrecy: the two sessions.
	"the server has one RSA-%d key pair; both sessions use it. The link is recorded (every segment's bytes)": "服务器只有一对 RSA-%d 密钥，两个会话都用它。链路被录下（每个报文段的字节）",
	"session %d: %s": "会话 %d：%s",
	"the client read %q; the recording holds %d bytes from the client and %d from the server":                     "客户读到 %q；录下客户发出的 %d 字节和服务器发出的 %d 字节",
	"later: the attacker has the recording and the server's private key, nothing else":                            "事后：攻击者拿到录下的数据和服务器的私钥，别无其他",
	"(the key leaked, or was seized, after both sessions ended; d=%s…)":                                           "（私钥在两个会话结束后泄露或被没收；d=%s…）",
	"the two sessions used %s and %s (X25519), with the same server certificate and key":                          "两个会话分别使用 %s 和 %s（X25519），服务器证书和私钥相同",
	"session 1 (RSA key exchange), from the recording":                                                            "会话 1（RSA 密钥交换），从录下的数据还原",
	"in the clear: client random %s, server random %s, suite %s":                                                  "明文可见：客户随机数 %s，服务器随机数 %s，密码套件 %s",
	"in the clear: the ClientKeyExchange, %d bytes: the pre-master secret encrypted with the server's public key": "明文可见：ClientKeyExchange，%d 字节：用服务器公钥加密的预主密钥",
	"the private key decrypts it: pre-master secret %s (48 bytes, 03 03 first)":                                   "用私钥解密：预主密钥 %s（48 字节，开头是 03 03）",
	"RSA: the private key decrypts the recorded ClientKeyExchange to the client's 48-byte pre-master secret (%v)": "RSA：私钥把录下的 ClientKeyExchange 解密为客户的 48 字节预主密钥（%v）",
	"RSA: the private key decrypts the recorded ClientKeyExchange to the client's 48-byte pre-master secret":      "RSA：私钥把录下的 ClientKeyExchange 解密为客户的 48 字节预主密钥",
	"RSA: from it and the recorded handshake the attacker derives the session's master secret and keys":           "RSA：攻击者由它和录下的握手消息导出该会话的主密钥和会话密钥",
	"the recorded application data, decrypted: %q, %q":                                                            "录下的应用数据，解密后：%q，%q",
	"    and %q … %q": "    以及 %q … %q",
	"RSA: the recorded records decrypt to the HTTP request (cookie included) and the response: no forward secrecy":        "RSA：录下的记录解密为 HTTP 请求（包括 cookie）和响应：没有前向保密",
	"master secret = PRF(pre-master, \"extended master secret\", hash of the recorded handshake messages) = %s":           "主密钥 = PRF(预主密钥, \"extended master secret\", 录下的握手消息的散列) = %s",
	"master secret = PRF(pre-master, \"master secret\", client random + server random) = %s":                              "主密钥 = PRF(预主密钥, \"master secret\", 客户随机数 + 服务器随机数) = %s",
	"key block = PRF(master, \"key expansion\", server random + client random): client write key %s, server write key %s": "密钥块 = PRF(主密钥, \"key expansion\", 服务器随机数 + 客户随机数)：客户写密钥 %s，服务器写密钥 %s",
	"session 2 (ECDHE), from the recording": "会话 2（ECDHE），从录下的数据还原",
	"in the clear: the server's ephemeral X25519 share %s, and an RSA signature over it and both randoms":                                                                                        "明文可见：服务器的临时 X25519 公钥 %s，以及对它和两个随机数的 RSA 签名",
	"the private key's only job here was that signature: it proves the share is the server's; it encrypted nothing":                                                                              "私钥在这里只用来签名：证明这个临时公钥来自服务器；它没有加密任何东西",
	"ECDHE: the server's key signed its X25519 share (the signature verifies with the certificate's public key): it authenticates, it hides nothing":                                             "ECDHE：服务器私钥对其 X25519 临时公钥签名（用证书中的公钥验证通过）：私钥只用于鉴别，不用于保密",
	"the RSA route: the ClientKeyExchange holds the client's %d-byte X25519 share %s; decrypting it with the private key: %v":                                                                    "RSA 的老办法：ClientKeyExchange 里是客户 %d 字节的 X25519 临时公钥 %s；用私钥解密：%v",
	"forced anyway (raw RSA, the last 48 bytes as a pre-master secret):":                                                                                                                         "硬算一次（裸 RSA 运算，取最后 48 字节当作预主密钥）：",
	"ECDHE: the RSA route fails: the ClientKeyExchange does not decrypt with the private key":                                                                                                    "ECDHE：RSA 的老办法失败：ClientKeyExchange 无法用私钥解密",
	"none of the %d application-data records opens: the pre-master secret was X25519(an ephemeral private key, the other side's share), and both ephemeral keys were erased after the handshake": "%d 个应用数据记录一个也解不开：预主密钥是 X25519(一方的临时私钥, 另一方的临时公钥)，两个临时私钥在握手后都已删除",
	"ECDHE: the %d recorded application-data records stay opaque to the holder of the private key: forward secrecy":                                                                              "ECDHE：持有私钥也解不开录下的 %d 个应用数据记录：前向保密",
	"control: the ECDH secret the lab copied from the client during the handshake, %s, which the attacker never sees:":                                                                           "对照：实验在握手时从客户处复制的 ECDH 共享密钥 %s（攻击者永远得不到）：",
	"the recorded application data, decrypted with it: %q":                                                                                                                                       "用它解密录下的应用数据：%q",
	"ECDHE: only the ephemeral secret, gone after the handshake, opens the records (the lab's copy decrypts them)":                                                                               "ECDHE：只有握手后即被删除的临时密钥才能解开这些记录（实验保留的副本能解密）",

	// resumption.
	"the server can resume a session two ways: from its session cache, by session ID (RFC 5246 §7.3), or from a session ticket the client brings back, sealed with the server's ticket key (RFC 5077)": "服务器有两种会话恢复方式：按会话 ID 从自己的会话缓存中查找（RFC 5246 §7.3），或者使用客户带回的会话票据，票据由服务器的票据密钥加密（RFC 5077）",
	"each of the server's packets is held %v in the network: one round trip (RTT) is about %v":                                                                                                         "服务器的每个分组在网络中滞留 %v：一个往返时间（RTT）约为 %v",
	"(each connection starts with its TCP handshake, one RTT before the ClientHello; only TLS messages are drawn)":                                                                                     "（每个连接先进行 TCP 三次握手，在 ClientHello 之前用去一个 RTT；这里只画 TLS 消息）",
	"1. a full handshake (a client without tickets)":                                                                                  "1. 完整握手（客户不支持会话票据）",
	"2. the same client again: resumption by session ID":                                                                              "2. 同一客户再次连接：按会话 ID 恢复会话",
	"3. a full handshake by a client that takes tickets":                                                                              "3. 支持会话票据的客户进行完整握手",
	"4. that client again: resumption by session ticket":                                                                              "4. 该客户再次连接：用会话票据恢复会话",
	"5. the ticket, to a server with another ticket key":                                                                              "5. 把票据交给票据密钥不同的服务器",
	"the client's cache holds a session with a %d-byte ticket (key name %s), opaque to it":                                            "客户的缓存中有一个会话，带 %d 字节的会话票据（密钥名 %s），客户看不懂其内容",
	"the client's cache holds a session: ID %s":                                                                                       "客户的缓存中有一个会话：ID %s",
	"the client's session cache is empty":                                                                                             "客户的会话缓存为空",
	"the client could send its request %v after its ClientHello: %.1f RTT (RTT %v, measured on the TCP handshake)":                    "客户在发出 ClientHello 后 %v 即可发送请求：%.1f 个 RTT（RTT 为 %v，由 TCP 三次握手测得）",
	"ClientHello carries the ticket in its session_ticket extension, and a fresh session ID %s: its echo will say the server resumed": "ClientHello 在 session_ticket 扩展中携带会话票据，以及一个新的会话 ID %s：服务器回显它即表示恢复会话",
	"ClientHello offers session ID %s":                                                                                                "ClientHello 提供会话 ID %s",
	"ClientHello offers no session":                                                                                                   "ClientHello 不提供会话",
	"ServerHello echoes that session ID: the server resumes the session; no certificate, no key exchange: the master secret is the session's, the keys are new (fresh randoms)":                                   "ServerHello 回显这个会话 ID：服务器恢复会话；没有证书，没有密钥交换：主密钥沿用该会话的，会话密钥是新的（随机数是新的）",
	"ServerHello carries another session ID, %s: the server does not resume; a full handshake follows":                                                                                                            "ServerHello 带回另一个会话 ID %s：服务器不恢复会话，接下来是完整握手",
	"ServerHello: session ID %s, the name of this new session":                                                                                                                                                    "ServerHello：会话 ID %s，新会话的名字",
	"NewSessionTicket: %d bytes, the session's state sealed with the server's ticket key (key name %s); the server keeps nothing":                                                                                 "NewSessionTicket：%d 字节，用服务器的票据密钥（密钥名 %s）加密的会话状态；服务器自己什么也不保存",
	"the server's ChangeCipherSpec and Finished come first: it had the master secret at once":                                                                                                                     "服务器的 ChangeCipherSpec 和 Finished 先发：它立刻就有主密钥",
	"full handshake: the server sends Certificate, ServerKeyExchange and ServerHelloDone, the client ClientKeyExchange, then the client's ChangeCipherSpec+Finished come first; DidResume is false on both sides": "完整握手：服务器发送 Certificate、ServerKeyExchange 和 ServerHelloDone，客户发送 ClientKeyExchange，然后客户的 ChangeCipherSpec+Finished 先发；双方的 DidResume 都为 false",
	"a client without tickets gets no NewSessionTicket: the server names the session (ID %s) and keeps it in its cache":                                                                                           "不支持票据的客户收不到 NewSessionTicket：服务器给会话起名（ID %s）并存入会话缓存",
	"by session ID: ClientHello offers the ID of handshake 1 and ServerHello echoes it":                                                                                                                           "按会话 ID 恢复：ClientHello 提供握手 1 的会话 ID，ServerHello 回显它",
	"by session ID: Certificate, ServerKeyExchange, ServerHelloDone and ClientKeyExchange disappear, and the server sends ChangeCipherSpec+Finished first":                                                        "按会话 ID 恢复：Certificate、ServerKeyExchange、ServerHelloDone 和 ClientKeyExchange 都不见了，服务器先发 ChangeCipherSpec+Finished",
	"by session ID: DidResume on both sides, ResumedWithTicket on neither":                                                                                                                                        "按会话 ID 恢复：双方 DidResume 为真，ResumedWithTicket 均为假",
	"a client that takes tickets gets a NewSessionTicket at the end of its full handshake, before the server's ChangeCipherSpec (RFC 5077 §3.3)":                                                                  "支持票据的客户在完整握手的最后收到 NewSessionTicket，位于服务器的 ChangeCipherSpec 之前（RFC 5077 §3.3）",
	"by ticket: ClientHello carries the ticket; the same four messages disappear and the server's ChangeCipherSpec+Finished come first":                                                                           "用会话票据恢复：ClientHello 携带票据；同样的四个消息不见了，服务器的 ChangeCipherSpec+Finished 先发",
	"by ticket: DidResume and ResumedWithTicket on both sides":                                                                                                                                                    "用会话票据恢复：双方的 DidResume 和 ResumedWithTicket 都为真",
	"the client waits 2 round trips before it can send data after a full handshake, 1 after a resumed one (server flights on the ladder: 1. %d, 2. %d, 3. %d, 4. %d)":                                             "完整握手后客户要等 2 个往返才能发送数据，会话恢复后只需 1 个（图中服务器的消息组数：1. %d，2. %d，3. %d，4. %d）",
	"measured: the full handshakes waited %v and %v, at least 2 RTT (2×%v); the resumed ones %v and %v, at least 1 RTT":                                                                                           "实测：完整握手等待了 %v 和 %v，至少 2 个 RTT（2×%v）；会话恢复等待了 %v 和 %v，至少 1 个 RTT",
	"a server with another ticket key cannot open the ticket: it falls back to a full handshake (DidResume false on both sides), and the request is still answered":                                               "票据密钥不同的服务器解不开票据：退回完整握手（双方 DidResume 为假），请求照样得到响应",
	"every connection, resumed or not, carried its request and answer":                                                                                                                                            "每个连接，无论是否恢复会话，都完成了请求和响应",
}

func init() {
	for en, zh := range labZHTLS2 {
		labZH[en] = zh
	}
}
