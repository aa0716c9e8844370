#include "cmd/commands.hpp"

int main(int argc, char** argv)
{
  return cmd::run(argc, argv);
}
