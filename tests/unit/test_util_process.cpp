#include "util/process.hpp"

#include <doctest/doctest.h>

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

TEST_CASE("process_start_time names this process and no dead one")
{
  const auto self = util::process_start_time(::getpid());
  REQUIRE(self.has_value());
  CHECK(*self > 0);
  CHECK(util::process_start_time(::getpid()) == self); // stable
  CHECK_FALSE(util::process_start_time(0).has_value());
  CHECK_FALSE(util::process_start_time(-1).has_value());

  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK_FALSE(util::process_start_time(child).has_value());
}

TEST_CASE("open_process refuses a wrong start time and its pidfd signals the exit")
{
  int gate[2];
  REQUIRE(::pipe(gate) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(gate[1]);
    char c;
    (void)::read(gate[0], &c, 1); // until the parent closes its end
    ::_exit(0);
  }
  ::close(gate[0]);
  const auto start = util::process_start_time(child);
  REQUIRE(start.has_value());
  CHECK_FALSE(util::open_process(child, *start + 1));

  const auto fd = util::open_process(child, *start);
  REQUIRE(fd);
  pollfd p{fd.get(), POLLIN, 0};
  CHECK(::poll(&p, 1, 0) == 0); // alive
  ::close(gate[1]);
  CHECK(::poll(&p, 1, 10'000) == 1); // exited
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK_FALSE(util::open_process(child, *start));
}
