package tlslite

// Alerts: RFC 5246 §7.2 (Alert protocol), RFC 5246 §7.2.2 (error alerts),
// RFC 7301 §3.2 (no_application_protocol), RFC 5746 §4 (no_renegotiation).

import "fmt"

// AlertLevel is the level byte of an alert record (RFC 5246 §7.2).
type AlertLevel uint8

const (
	AlertLevelWarning AlertLevel = 1
	AlertLevelFatal   AlertLevel = 2
)

var alertLevelNames = map[AlertLevel]string{
	AlertLevelWarning: "warning",
	AlertLevelFatal:   "fatal",
}

func (l AlertLevel) String() string { return enumName(alertLevelNames, l, "level") }

// Alert is an AlertDescription (RFC 5246 §7.2).
type Alert uint8

const (
	AlertCloseNotify            Alert = 0
	AlertUnexpectedMessage      Alert = 10
	AlertBadRecordMAC           Alert = 20
	AlertRecordOverflow         Alert = 22
	AlertHandshakeFailure       Alert = 40
	AlertBadCertificate         Alert = 42
	AlertUnsupportedCertificate Alert = 43
	AlertCertificateRevoked     Alert = 44
	AlertCertificateExpired     Alert = 45
	AlertCertificateUnknown     Alert = 46
	AlertIllegalParameter       Alert = 47
	AlertUnknownCA              Alert = 48
	AlertAccessDenied           Alert = 49
	AlertDecodeError            Alert = 50
	AlertDecryptError           Alert = 51
	AlertProtocolVersion        Alert = 70
	AlertInsufficientSecurity   Alert = 71
	AlertInternalError          Alert = 80
	AlertInappropriateFallback  Alert = 86
	AlertUserCanceled           Alert = 90
	AlertNoRenegotiation        Alert = 100
	AlertUnsupportedExtension   Alert = 110
	AlertUnrecognizedName       Alert = 112
	AlertNoApplicationProtocol  Alert = 120
)

var alertNames = map[Alert]string{
	AlertCloseNotify:            "close_notify",
	AlertUnexpectedMessage:      "unexpected_message",
	AlertBadRecordMAC:           "bad_record_mac",
	AlertRecordOverflow:         "record_overflow",
	AlertHandshakeFailure:       "handshake_failure",
	AlertBadCertificate:         "bad_certificate",
	AlertUnsupportedCertificate: "unsupported_certificate",
	AlertCertificateRevoked:     "certificate_revoked",
	AlertCertificateExpired:     "certificate_expired",
	AlertCertificateUnknown:     "certificate_unknown",
	AlertIllegalParameter:       "illegal_parameter",
	AlertUnknownCA:              "unknown_ca",
	AlertAccessDenied:           "access_denied",
	AlertDecodeError:            "decode_error",
	AlertDecryptError:           "decrypt_error",
	AlertProtocolVersion:        "protocol_version",
	AlertInsufficientSecurity:   "insufficient_security",
	AlertInternalError:          "internal_error",
	AlertInappropriateFallback:  "inappropriate_fallback",
	AlertUserCanceled:           "user_canceled",
	AlertNoRenegotiation:        "no_renegotiation",
	AlertUnsupportedExtension:   "unsupported_extension",
	AlertUnrecognizedName:       "unrecognized_name",
	AlertNoApplicationProtocol:  "no_application_protocol",
}

func (a Alert) String() string { return enumName(alertNames, a, "alert") }

// AlertError reports a fatal alert that ended the connection: one we sent
// (Sent is true; Err holds the local reason) or one the peer sent us.
// Use errors.As to recover it from any error returned by a Conn.
type AlertError struct {
	Alert Alert
	Sent  bool
	Err   error // the local reason for a sent alert; nil for a received one
}

func (e *AlertError) Error() string {
	if e.Sent {
		if e.Err != nil {
			return fmt.Sprintf("tlslite: sent alert %s: %v", e.Alert, e.Err)
		}
		return "tlslite: sent alert " + e.Alert.String()
	}
	return "tlslite: received alert " + e.Alert.String()
}

func (e *AlertError) Unwrap() error { return e.Err }

// Is lets errors.Is(err, AlertBadRecordMAC) match an AlertError carrying that
// alert, whichever side sent it.
func (e *AlertError) Is(target error) bool {
	if a, ok := target.(Alert); ok {
		return a == e.Alert
	}
	return false
}

// Error makes Alert usable as an errors.Is target.
func (a Alert) Error() string { return "tlslite: alert " + a.String() }
