#include "app/cli.hpp"

int main(int argc, char** argv) { return attnbench::cli_main(argc, argv); }
