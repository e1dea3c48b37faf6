package tlslite

// What the client and the server do alike in a TLS 1.2 handshake
// (RFC 5246 §7.3): the master secret (§8.1, RFC 7627 §4), the key block
// and the pending states (§6.3), ChangeCipherSpec (§7.1) and Finished
// (§7.4.9), and the ConnectionState a finished handshake leaves.

import (
	"crypto/subtle"
	"errors"
	"slices"
)

// handshakeState is the part of a handshake both sides hold; the client's
// and the server's states embed it.
type handshakeState struct {
	c            *Conn
	hello        *clientHelloMsg // the ClientHello sent or received
	hs           transcript
	suite        *cipherSuite
	serverRandom []byte
	ems          bool    // RFC 7627 extended master secret in use
	curve        CurveID // ECDHE group; 0 for RSA key exchange
	master       []byte
}

// deriveMaster computes the master secret of a full handshake right after
// ClientKeyExchange: RFC 7627 §4 over the session hash, or RFC 5246 §8.1
// over the randoms.
func (hs *handshakeState) deriveMaster(preMaster []byte) {
	if hs.ems {
		hs.master = extendedMasterFromPreMaster(hs.suite.hash, preMaster, hs.hs.sum())
	} else {
		hs.master = masterFromPreMaster(hs.suite.hash, preMaster, hs.hello.random, hs.serverRandom)
	}
}

// exchangeFinished readies both directions' pending states, then runs the
// two ChangeCipherSpec and Finished flights in order: the client's first
// on a full handshake (RFC 5246 §7.3 Figure 1), the server's first on an
// abbreviated one (Figure 2). preMaster is nil when resuming.
func (hs *handshakeState) exchangeFinished(preMaster []byte, first, second func() error) error {
	if err := hs.establishKeys(preMaster); err != nil {
		return err
	}
	if err := first(); err != nil {
		return err
	}
	return second()
}

// establishKeys derives the key block (RFC 5246 §6.3) and installs the
// client's keys as the pending write state of the client and the pending
// read state of the server, the server's keys the other way round.
func (hs *handshakeState) establishKeys(preMaster []byte) error {
	c := hs.c
	km := keysFromMaster(hs.suite.hash, hs.master, hs.hello.random, hs.serverRandom, hs.suite.keyLen, gcmImplicitNonce)
	clientWrites, serverWrites := &c.out, &c.in
	if !c.isClient {
		clientWrites, serverWrites = serverWrites, clientWrites
	}
	var err error
	if clientWrites.next, err = newRecordAEAD(km.ClientKey, km.ClientIV); err != nil {
		return c.sendAlert(AlertInternalError, err)
	}
	if serverWrites.next, err = newRecordAEAD(km.ServerKey, km.ServerIV); err != nil {
		return c.sendAlert(AlertInternalError, err)
	}
	c.writeKeyLog(hs.hello.random, hs.master)
	c.observe(false, func(e endpoint) Event {
		return KeysEvent{endpoint: e, ClientRandom: slices.Clone(hs.hello.random), ServerRandom: slices.Clone(hs.serverRandom),
			CipherSuite: hs.suite.id, ExtendedMasterSecret: hs.ems,
			PreMasterSecret: slices.Clone(preMaster), MasterSecret: slices.Clone(hs.master), Keys: km.clone()}
	})
	return nil
}

// sendFinished sends ChangeCipherSpec and our Finished (RFC 5246 §7.4.9)
// and flushes the flight.
func (hs *handshakeState) sendFinished() error {
	c := hs.c
	c.setBuffering()
	if err := c.writeChangeCipherSpec(); err != nil {
		return err
	}
	fin := &finishedMsg{verifyData: hs.hs.finished(hs.master, c.isClient)}
	if c.config.testHooks != nil && c.config.testHooks.corruptFinished {
		fin.verifyData[0] ^= 1
	}
	if err := c.writeHandshake(&hs.hs, fin, func(m message) Event {
		return FinishedEvent{message: m, VerifyData: slices.Clone(fin.verifyData)}
	}); err != nil {
		return err
	}
	return c.flush()
}

// readFinished reads the peer's ChangeCipherSpec and Finished and checks
// verify_data (RFC 5246 §7.4.9; decrypt_error on a mismatch).
func (hs *handshakeState) readFinished() error {
	c := hs.c
	if err := c.readChangeCipherSpec(); err != nil {
		return err
	}
	want := hs.hs.finished(hs.master, !c.isClient)
	fin := new(finishedMsg)
	if _, err := c.readHandshake(nil, typeFinished, fin); err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(fin.verifyData, want) != 1 {
		peer := "client"
		if c.isClient {
			peer = "server"
		}
		return c.sendAlert(AlertDecryptError, errors.New(peer+" Finished does not verify"))
	}
	raw, _ := fin.marshal()
	hs.hs.Write(raw)
	c.observeMessage(false, raw, func(m message) Event {
		return FinishedEvent{message: m, VerifyData: slices.Clone(fin.verifyData)}
	})
	return nil
}

// complete records what both sides agreed in the ConnectionState and
// marks the handshake done; each side has set its own fields before.
func (hs *handshakeState) complete(resumed, viaTicket bool) {
	st := &hs.c.state
	st.Version = VersionTLS12
	st.CipherSuite = hs.suite.id
	st.ExtendedMasterSecret = hs.ems
	st.DidResume = resumed
	st.ResumedWithTicket = viaTicket
	st.ServerName = hs.hello.serverName
	st.CurveID = hs.curve
	hs.c.handshakeDone.Store(true)
}
