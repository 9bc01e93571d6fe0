#pragma once
// HTTP/1 request-head classification (RFC 9112 §3, SPEC R-TCP-6).
//
// A first flight is HTTP/1 when it starts with one of GET HEAD POST PUT DELETE OPTIONS
// TRACE PATCH CONNECT followed by a space. The head is read through the first empty line
// ("\r\n\r\n"), at most kMaxFirstFlight bytes. Results:
//   need_more  a prefix of a method + space, or a head without its end yet;
//   other      anything that cannot start such a request;
//   no_name    no Host, more than one Host, an IP-literal or invalid Host, a malformed or
//              oversized head;
//   name       exactly one valid Host (port stripped, lowercased, trailing dot removed);
//   mismatch   an absolute-form target (`http://h/…`) naming another host than Host;
//   connect    CONNECT host:port — `name` is the authority's host (no_name if it is an IP
//              literal or invalid).
#include "base/bytes.h"
#include "sniff/sniff.h"

namespace moat::http {

sniff::Result parse_request_head(Bytes first_flight);

}  // namespace moat::http
