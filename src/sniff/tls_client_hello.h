#pragma once
// TLS ClientHello server_name extraction (RFC 8446 §4.1.2, RFC 6066 §3), SPEC R-TCP-6.
//
// The input is the guest's first bytes: a sequence of TLS records (type 22, handshake)
// whose fragments together carry the ClientHello, possibly split anywhere, across records
// and across TCP segments. The handshake message is reassembled into a bounded buffer
// (kMaxFirstFlight) and parsed with a sticky-failure ByteReader.
//
// Results: need_more while the bytes are a prefix of a ClientHello; other when the first
// record header cannot start TLS (type 22, version 0x0301..0x0304); no_name for a hello
// without SNI, with an IP-literal or invalid host_name, a malformed hello, or one that
// does not fit in kMaxFirstFlight; name otherwise (the first host_name entry).
#include "base/bytes.h"
#include "sniff/sniff.h"

namespace moat::tls {

sniff::Result parse_client_hello(Bytes first_flight);

}  // namespace moat::tls
