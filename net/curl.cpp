#include "net/curl.hpp"

#include "util/error.hpp"

#include <dlfcn.h>

#include <atomic>
#include <mutex>

namespace net {

namespace {

std::atomic<bool> g_loaded{false};

template <typename Fn>
void bind(void* lib, Fn& fn, const char* name)
{
  fn = reinterpret_cast<Fn>(::dlsym(lib, name));
  if (!fn) {
    throw util::Error(util::Errc::io, std::string("libcurl.so.4 lacks ") + name, "apt-get install libcurl4");
  }
}

Curl load()
{
  // Never closed: libcurl keeps global state for the life of the process.
  void* lib = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* why = ::dlerror();
    throw util::Error(util::Errc::io, std::string("cannot load libcurl: ") + (why ? why : "unknown error"),
                      "apt-get install libcurl4");
  }
  Curl c{};
  bind(lib, c.easy_init, "curl_easy_init");
  bind(lib, c.easy_setopt, "curl_easy_setopt");
  bind(lib, c.easy_perform, "curl_easy_perform");
  bind(lib, c.easy_getinfo, "curl_easy_getinfo");
  bind(lib, c.easy_cleanup, "curl_easy_cleanup");
  bind(lib, c.easy_strerror, "curl_easy_strerror");
  bind(lib, c.easy_pause, "curl_easy_pause");
  bind(lib, c.slist_append, "curl_slist_append");
  bind(lib, c.slist_free_all, "curl_slist_free_all");
  bind(lib, c.multi_init, "curl_multi_init");
  bind(lib, c.multi_add_handle, "curl_multi_add_handle");
  bind(lib, c.multi_remove_handle, "curl_multi_remove_handle");
  bind(lib, c.multi_perform, "curl_multi_perform");
  bind(lib, c.multi_poll, "curl_multi_poll");
  bind(lib, c.multi_wakeup, "curl_multi_wakeup");
  bind(lib, c.multi_info_read, "curl_multi_info_read");
  bind(lib, c.multi_cleanup, "curl_multi_cleanup");
  bind(lib, c.easy_escape, "curl_easy_escape");
  bind(lib, c.free, "curl_free");
  decltype(&::curl_global_init) global_init = nullptr;
  bind(lib, global_init, "curl_global_init");
  if (global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    throw util::Error(util::Errc::io, "curl_global_init failed");
  }
  return c;
}

} // namespace

const Curl& curl()
{
  static const Curl c = load(); // thread-safe; a throw leaves it to be retried
  g_loaded = true;
  return c;
}

bool curl_loaded()
{
  return g_loaded;
}

} // namespace net
