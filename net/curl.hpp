#pragma once
// libcurl, loaded with dlopen on first use.
//
// Why: linking libcurl pulls in its TLS, Kerberos, LDAP, ... dependency tree,
// about 10 MiB of mapped pages and ~18 ms of dynamic linking in every process,
// including each short-lived `secrets lease`. Only the heartbeat and the proxy
// need HTTP, so only a daemon that uses one of them pays for it.
//
// Contract:
// - net::curl() loads libcurl.so.4 and calls curl_global_init exactly once
//   (thread-safe); later calls return the same table. It throws
//   util::Error(Errc::io) naming the Debian package (libcurl4) when the
//   library or a symbol is missing; it never returns a partial table.
// - The header only uses <curl/curl.h> for types and constants: nothing here
//   makes the binary link against libcurl.
// - easy_setopt and friends are C varargs: pass long for integer options
//   (1L), curl_off_t for *_LARGE options, and function pointers of the exact
//   callback type. There is no compile-time type check as with the macro.

#include <curl/curl.h>

namespace net {

struct Curl
{
  decltype(&::curl_easy_init) easy_init;
  decltype(&::curl_easy_setopt) easy_setopt;
  decltype(&::curl_easy_perform) easy_perform;
  decltype(&::curl_easy_getinfo) easy_getinfo;
  decltype(&::curl_easy_cleanup) easy_cleanup;
  decltype(&::curl_easy_strerror) easy_strerror;
  decltype(&::curl_easy_pause) easy_pause;
  decltype(&::curl_slist_append) slist_append;
  decltype(&::curl_slist_free_all) slist_free_all;
  decltype(&::curl_multi_init) multi_init;
  decltype(&::curl_multi_add_handle) multi_add_handle;
  decltype(&::curl_multi_remove_handle) multi_remove_handle;
  decltype(&::curl_multi_perform) multi_perform;
  decltype(&::curl_multi_poll) multi_poll;
  decltype(&::curl_multi_wakeup) multi_wakeup;
  decltype(&::curl_multi_info_read) multi_info_read;
  decltype(&::curl_multi_cleanup) multi_cleanup;
  decltype(&::curl_easy_escape) easy_escape;
  decltype(&::curl_free) free;
};

const Curl& curl();

// Whether libcurl has been loaded in this process (for tests and the bench).
bool curl_loaded();

} // namespace net
