// bench_hello: the process-start floor of `make bench` (a C++ hello-world's exec time).
#include <iostream>

int main()
{
  std::cout << "hello\n";
  return 0;
}
