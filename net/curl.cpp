#include "net/curl.hpp"

#include "util/error.hpp"

#include <dlfcn.h>

#include <atomic>
#include <string>

namespace net {

namespace {

// The soname Debian's libcurl4 (and libcurl4-openssl-dev's runtime) installs.
constexpr const char* k_soname = "libcurl.so.4";
constexpr const char* k_fix = "apt-get install libcurl4";

std::atomic<bool> g_loaded{false};

template <typename Fn>
void resolve(void* lib, Fn& field, const char* name)
{
  void* symbol = ::dlsym(lib, name);
  if (symbol == nullptr) {
    throw util::Error(util::Errc::io, std::string("failed to load libcurl: ") + k_soname + " has no " + name, k_fix);
  }
  // POSIX guarantees that a dlsym result converts to a function pointer.
  field = reinterpret_cast<Fn>(symbol);
}

Curl load()
{
  // RTLD_LOCAL: libcurl's own dependencies (OpenSSL, GSSAPI, ...) stay out of
  // the global namespace, so they cannot interpose on anything we link.
  void* lib = ::dlopen(k_soname, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = ::dlerror();
    throw util::Error(util::Errc::io, std::string("failed to load libcurl: ") + (why ? why : k_soname), k_fix);
  }
  try {
    Curl c{};
    resolve(lib, c.easy_init, "curl_easy_init");
    resolve(lib, c.easy_setopt, "curl_easy_setopt");
    resolve(lib, c.easy_perform, "curl_easy_perform");
    resolve(lib, c.easy_getinfo, "curl_easy_getinfo");
    resolve(lib, c.easy_cleanup, "curl_easy_cleanup");
    resolve(lib, c.easy_strerror, "curl_easy_strerror");
    resolve(lib, c.easy_pause, "curl_easy_pause");
    resolve(lib, c.slist_append, "curl_slist_append");
    resolve(lib, c.slist_free_all, "curl_slist_free_all");
    resolve(lib, c.multi_init, "curl_multi_init");
    resolve(lib, c.multi_add_handle, "curl_multi_add_handle");
    resolve(lib, c.multi_remove_handle, "curl_multi_remove_handle");
    resolve(lib, c.multi_perform, "curl_multi_perform");
    resolve(lib, c.multi_poll, "curl_multi_poll");
    resolve(lib, c.multi_wakeup, "curl_multi_wakeup");
    resolve(lib, c.multi_info_read, "curl_multi_info_read");
    resolve(lib, c.multi_cleanup, "curl_multi_cleanup");
    resolve(lib, c.easy_escape, "curl_easy_escape");
    resolve(lib, c.free, "curl_free");
    decltype(&::curl_global_init) global_init = nullptr;
    resolve(lib, global_init, "curl_global_init");
    // Once per process, before any handle exists (curl_global_init is not
    // thread-safe; the function-local static in curl() serializes us).
    if (const CURLcode rc = global_init(CURL_GLOBAL_DEFAULT); rc != CURLE_OK) {
      throw util::Error(util::Errc::io, "failed to initialize libcurl: curl_global_init returned "
                                          + std::to_string(static_cast<int>(rc)),
                        k_fix);
    }
    // Never dlclose'd nor curl_global_cleanup'ed: threads (the heartbeat, the
    // proxy) may use it until the process exits, and exit unmaps it anyway.
    g_loaded.store(true, std::memory_order_release);
    return c;
  } catch (...) {
    ::dlclose(lib);
    throw;
  }
}

} // namespace

const Curl& curl()
{
  // A throwing initializer leaves the static uninitialized, so a later call
  // tries again (say, after `apt-get install libcurl4`).
  static const Curl k_curl = load();
  return k_curl;
}

bool curl_loaded()
{
  return g_loaded.load(std::memory_order_acquire);
}

} // namespace net
