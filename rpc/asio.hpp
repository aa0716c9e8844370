#pragma once
// The one header that includes Boost.Asio. Boost 1.74's Asio under GCC 12 in
// C++20 mode uses std::exchange without including <utility> (DESIGN.md 9).
#include <utility>

#include <boost/asio.hpp>

namespace asio = boost::asio;
