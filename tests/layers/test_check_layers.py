#!/usr/bin/env python3
"""The layer check can fail: small made-up trees with one wrong edge each.

check_layers.py passing on the real tree proves nothing unless it is seen to
find an edge the table does not allow; these cases are that proof, kept in
`make test` so that a change to the parser cannot make the check blind.
"""

import os
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_layers  # noqa: E402

TABLE = """# Architecture

Words before the table.

| folder | one line | may use |
| --- | --- | --- |
| `util/` | errors | `std` |
| `store/age/` | age | `util`, `libsodium` |
| `store/` | the store | `util`, `store/age` (for `SecretBuffer`), `nlohmann/json` |
| `rpc/` | framing; `rpc/asio.hpp` | `util`, `Boost.Asio` |
| `proxy/` | the proxy | `util`, `store`, `rpc/asio.hpp` (that header only) |
| `tests/` | tests | `all` |
| `skills/`, `packaging/` | no C++ | the secrets CLI |

## Decisions
"""


class Tree:
    def __init__(self, table=TABLE):
        self.dir = tempfile.TemporaryDirectory()
        self.root = self.dir.name
        self.write("ARCHITECTURE.md", table)
        # A tree that passes: every kind of allowed edge once.
        self.write("util/error.hpp", "#pragma once\n#include <string>\n")
        self.write("store/age/primitives.cpp", '#include "store/age/primitives.hpp"\n#include <sodium.h>\n')
        self.write("store/age/primitives.hpp", '#include "util/error.hpp"\n')
        self.write("store/store.cpp", '#include "store/age/primitives.hpp"\n#include <nlohmann/json.hpp>\n')
        self.write("rpc/asio.hpp", "#include <utility>\n#include <boost/asio.hpp>\n")
        self.write("rpc/client.hpp", '#include "rpc/asio.hpp"\n')
        self.write("proxy/server.hpp", '#include "rpc/asio.hpp"\n#include "store/store.hpp"\n#include "local.hpp"\n')
        self.write("proxy/local.hpp", "#pragma once\n")
        self.write("tests/unit/test_store_age_primitives.cpp", '#include "proxy/server.hpp"\n#include <sodium.h>\n')
        self.write("tests/unit/test_util_error.cpp", '#include "util/error.hpp"\n')
        self.write("skills/SKILL.md", "not C++\n")
        self.write("build/generated.cpp", '#include "proxy/server.hpp"\n')  # build output is not read

    def write(self, path, text):
        full = os.path.join(self.root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            f.write(text)

    def problems(self):
        return check_layers.check(self.root)

    def close(self):
        self.dir.cleanup()


class CheckLayers(unittest.TestCase):
    def setUp(self):
        self.tree = Tree()

    def tearDown(self):
        self.tree.close()

    def assert_one(self, *fragments):
        problems = self.tree.problems()
        self.assertEqual(len(problems), 1, problems)
        for fragment in fragments:
            self.assertIn(fragment, problems[0])

    def test_the_allowed_tree_passes(self):
        self.assertEqual(self.tree.problems(), [])

    def test_a_header_only_edge_to_an_undeclared_folder(self):
        self.tree.write("util/paths.hpp", '#pragma once\n#include "store/store.hpp"\n')
        self.assert_one("util/paths.hpp:2", 'includes "store/store.hpp"', "does not let util/ use store/")

    def test_a_subfolder_is_a_folder_of_its_own(self):
        # proxy may use store/, not store/age/ under it.
        self.tree.write("proxy/transfer.cpp", '#include "store/age/primitives.hpp"\n')
        self.assert_one("proxy/transfer.cpp:1", "does not let proxy/ use store/age/")

    def test_a_header_token_allows_that_header_only(self):
        self.tree.write("proxy/server.cpp", '#include "rpc/asio.hpp"\n#include "rpc/client.hpp"\n')
        self.assert_one("proxy/server.cpp:2", '"rpc/client.hpp"', "does not let proxy/ use rpc/")

    def test_a_library_the_folder_does_not_declare(self):
        self.tree.write("store/store.cpp", '#include "store/age/primitives.hpp"\n  #  include <sodium.h>\n')
        self.assert_one("store/store.cpp:2", "<sodium.h>", "does not let store/ use libsodium")

    def test_a_library_the_check_does_not_know(self):
        self.tree.write("rpc/framing.cpp", "#include <boost/process.hpp>\n")
        self.assert_one("rpc/framing.cpp:1", "<boost/process.hpp>", "does not know")

    def test_a_folder_without_a_row(self):
        self.tree.write("newfolder/x.cpp", '#include "util/error.hpp"\n')
        self.assert_one("newfolder/ holds C++ but has no row")

    def test_cpp_in_a_row_that_names_nothing(self):
        self.tree.write("packaging/helper.cpp", "int main() {}\n")
        self.assert_one("packaging/ holds C++", "names nothing")

    def test_a_quoted_include_outside_every_folder(self):
        self.tree.write("proxy/x.cpp", '#include "nowhere/x.hpp"\n')
        self.assert_one('"nowhere/x.hpp"', "in no folder of the table")

    def test_a_unit_test_named_outside_the_scheme(self):
        self.tree.write("tests/unit/test_process.cpp", "\n")
        self.assert_one("tests/unit/test_process.cpp", "test_<folder>_<file>.cpp")

    def test_an_unknown_name_in_the_table_fails(self):
        self.tree.write("ARCHITECTURE.md", TABLE.replace("`util`, `Boost.Asio`", "`util`, `Boost.Asoi`"))
        self.assert_one('"Boost.Asoi"', "rpc/", "neither a folder")

    def test_a_table_that_cannot_be_found_fails(self):
        self.tree.write("ARCHITECTURE.md", TABLE.replace("may use", "uses"))
        self.assert_one('no table with a "folder" and a "may use" column')

    def test_names_in_parentheses_are_for_people(self):
        # `SecretBuffer` in store/'s cell is inside parentheses: not a rule, not an error.
        rules, errors = check_layers.parse_architecture(TABLE)
        self.assertEqual(errors, [])
        self.assertEqual(rules.folder_uses["store"], {"util", "store/age"})
        self.assertEqual(rules.header_uses["proxy"], {"rpc/asio.hpp"})
        self.assertEqual(rules.library_uses["store"], {"nlohmann/json"})
        self.assertIn("skills", rules.no_code)
        self.assertIn("tests", rules.anything)

    def test_the_real_table_parses_and_names_every_library_folder(self):
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "..", "..", "ARCHITECTURE.md"), encoding="utf-8") as f:
            rules, errors = check_layers.parse_architecture(f.read())
        self.assertEqual(errors, [])
        for folder in ("util", "net", "config", "store/age", "store", "audit", "lease", "rotation", "killswitch",
                       "rpc", "proxy", "daemon", "cmd", "tests", "fuzz", "bench"):
            self.assertIn(folder, rules.folders)


if __name__ == "__main__":
    unittest.main()
