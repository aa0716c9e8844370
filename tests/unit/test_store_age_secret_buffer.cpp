#include "store/age/secret_buffer.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

using store::age::SecretBuffer;

namespace {

std::string pattern(size_t n, size_t seed)
{
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[i] = static_cast<char>('a' + (seed + i) % 26);
  }
  return out;
}

bool all_zero(const uint8_t* p, size_t n)
{
  // volatile: the bytes were written through another object, keep the reads.
  const volatile uint8_t* v = p;
  for (size_t i = 0; i < n; ++i) {
    if (v[i] != 0) {
      return false;
    }
  }
  return true;
}

} // namespace

TEST_CASE("SecretBuffer sizes around the pooled limit and the slot sizes are zero-filled and hold their bytes")
{
  for (size_t n : {size_t{1}, size_t{31}, size_t{32}, size_t{33}, size_t{64}, size_t{513},
                   SecretBuffer::k_pooled_max - 1, SecretBuffer::k_pooled_max, SecretBuffer::k_pooled_max + 1,
                   size_t{100'000}}) {
    CAPTURE(n);
    SecretBuffer zero(n);
    REQUIRE(zero.size() == n);
    CHECK(all_zero(zero.data(), n));
    const std::string text = pattern(n, n);
    SecretBuffer copy(text);
    CHECK(copy.view() == text);
  }
}

TEST_CASE("SecretBuffer: many small buffers span several regions without overlapping")
{
  // 3,000 x 33 bytes (64-byte slots): about 12 regions of 16 KiB.
  std::vector<SecretBuffer> buffers;
  std::set<const uint8_t*> starts;
  for (size_t i = 0; i < 3000; ++i) {
    buffers.emplace_back(pattern(33, i));
    starts.insert(buffers.back().data());
  }
  CHECK(starts.size() == buffers.size());
  // Free every other one and allocate again: reused slots must not clobber live ones.
  for (size_t i = 0; i < buffers.size(); i += 2) {
    buffers[i] = SecretBuffer(pattern(40, i + 7));
  }
  for (size_t i = 0; i < buffers.size(); ++i) {
    CAPTURE(i);
    REQUIRE(buffers[i].view() == (i % 2 == 0 ? pattern(40, i + 7) : pattern(33, i)));
  }
}

TEST_CASE("SecretBuffer: a pooled slot is wiped when freed and comes back zero-filled")
{
  const uint8_t* where = nullptr;
  {
    SecretBuffer secret(pattern(48, 3));
    where = secret.data();
    CHECK_FALSE(all_zero(where, 48));
  }
  // The region stays mapped (slots go back to the pool, never to the system),
  // so the freed slot can be read: the value must be gone.
  CHECK(all_zero(where, 64));
  SecretBuffer next(size_t{48});
  CHECK(next.data() == where); // the pool hands the slot out again
  CHECK(all_zero(next.data(), next.size()));

  SUBCASE("move assignment wipes the buffer it replaces")
  {
    SecretBuffer a(pattern(20, 1));
    const uint8_t* old = a.data();
    a = SecretBuffer(pattern(200, 2));
    CHECK(all_zero(old, 32));
    CHECK(a.view() == pattern(200, 2));
  }

  SUBCASE("shrink wipes the tail and keeps the slot")
  {
    SecretBuffer a(pattern(30, 5));
    uint8_t* p = a.data();
    a.shrink(10);
    CHECK(a.data() == p);
    CHECK(a.view() == pattern(30, 5).substr(0, 10));
    CHECK(all_zero(p + 10, 20));
  }
}

TEST_CASE("SecretBuffer: buffers created and freed on several threads stay intact")
{
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &bad] {
      std::vector<SecretBuffer> mine;
      for (size_t i = 0; i < 2000; ++i) {
        mine.emplace_back(pattern(1 + (i % 200), i * 4 + static_cast<size_t>(t)));
        if (i % 3 == 0) {
          mine.erase(mine.begin() + static_cast<long>(mine.size() / 2));
        }
      }
      // pattern(n, seed) starts with 'a' + seed % 26, which is enough to rebuild it.
      for (const auto& b : mine) {
        if (b.size() == 0 || b.view() != pattern(b.size(), static_cast<size_t>(b.data()[0] - 'a'))) {
          ++bad[static_cast<size_t>(t)];
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  CHECK(bad == std::vector<int>(4, 0));
}
