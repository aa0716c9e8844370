#!/usr/bin/env python3
"""The layer check: every folder includes only what ARCHITECTURE.md lets it use.

Every library gets the whole source root as its include directory (a header
can only be named "folder/file.hpp" from there), so neither the compiler nor
the link order notices a header-only edge that breaks the layer order. This
check does: it reads the folder table of ARCHITECTURE.md (the doc is the only
list, so the two cannot drift) and every C++ file's #include lines, and fails
on an edge the "may use" column does not allow.

The "may use" column, as read here: the names in backticks are the rules;
text outside them, and anything in parentheses, is for people. A name is
  - a folder of the table (`util`, `store/age`): its headers,
  - a header of a folder (`rpc/asio.hpp`): that header alone,
  - a library in LIBRARIES below (`libsodium`, `nlohmann/json` ...),
  - `std`: the standard library and the system's headers only (no name needed),
  - `all`: anything (tests, fuzz targets).
An unknown name fails the check, so a typo in the doc is caught. A row with
no name is for a folder without C++ (skills, packaging). A folder's own
headers are always allowed.

Also checked: every unit test file is named tests/unit/test_<folder>_<file>.cpp
(STYLE.md), with <folder> a folder of the table ('/' written '_').

Usage: check_layers.py [SOURCE_ROOT]   (default: this script's repository)
Exit status 0 when every edge is allowed, 1 otherwise (each one printed).
"""

import os
import re
import sys

# The libraries a "may use" cell can name, and the include paths that are
# theirs. An include under `boost/` that is none of these is refused too, so
# a new Boost library is a decision written in the table.
LIBRARIES = {
    "libsodium": ("sodium.h", "sodium/"),
    "nlohmann/json": ("nlohmann/",),
    "Boost.Asio": ("boost/asio.hpp", "boost/asio/"),
    "Boost.Beast": ("boost/beast.hpp", "boost/beast/"),
    "zlib": ("zlib.h",),
    "libcurl": ("curl/",),
    "libdl": ("dlfcn.h",),
    "spdlog": ("spdlog/",),
    "CLI11": ("CLI/",),
    "doctest": ("doctest/",),
}
UNLISTED_LIBRARY_PREFIXES = ("boost/",)

SOURCE_SUFFIXES = (".cpp", ".hpp", ".h", ".cc", ".c")
SKIPPED_DIRS = {".git", "node_modules", "__pycache__"}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')
TICKED = re.compile(r"`([^`]+)`")
PARENS = re.compile(r"\([^()]*\)")


class Rules:
    """ARCHITECTURE.md's table: folder -> what it may use."""

    def __init__(self):
        self.folders = []  # in table order, without the trailing '/'
        self.no_code = set()  # rows without a name: folders without C++
        self.anything = set()  # folders whose cell says `all`
        self.folder_uses = {}  # folder -> set of folders
        self.header_uses = {}  # folder -> set of "folder/file.hpp"
        self.library_uses = {}  # folder -> set of LIBRARIES keys

    def folder_of(self, path):
        """The table folder that holds `path` (the longest one), or None."""
        best = None
        for folder in self.folders:
            if path.startswith(folder + "/") and (best is None or len(folder) > len(best)):
                best = folder
        return best


def split_row(line):
    cells = line.strip().strip("|").split("|")
    return [c.strip() for c in cells]


def parse_architecture(text):
    """Returns (Rules, errors). Errors are problems of the table itself."""
    rules = Rules()
    errors = []
    lines = text.splitlines()
    header = None
    for i, line in enumerate(lines):
        if line.lstrip().startswith("|"):
            cells = [c.lower() for c in split_row(line)]
            if "folder" in cells and "may use" in cells:
                header = i
                break
    if header is None:
        return rules, ['ARCHITECTURE.md has no table with a "folder" and a "may use" column']
    columns = [c.lower() for c in split_row(lines[header])]
    folder_col = columns.index("folder")
    use_col = columns.index("may use")

    rows = []
    for line in lines[header + 2 :]:
        if not line.lstrip().startswith("|"):
            break
        cells = split_row(line)
        if len(cells) != len(columns):
            errors.append("ARCHITECTURE.md: a table row has %d cells, not %d: %s" % (len(cells), len(columns), line))
            continue
        folders = [f.rstrip("/") for f in TICKED.findall(cells[folder_col])]
        if not folders:
            errors.append("ARCHITECTURE.md: a table row names no folder in backticks: %s" % line)
            continue
        names = TICKED.findall(PARENS.sub("", cells[use_col]))
        rows.append((folders, names))
        rules.folders.extend(folders)

    known_folders = set(rules.folders)
    for folders, names in rows:
        uses, headers, libraries = set(), set(), set()
        anything = False
        for name in names:
            bare = name.rstrip("/")
            if name == "all":
                anything = True
            elif name == "std":
                pass
            elif name in LIBRARIES:
                libraries.add(name)
            elif bare in known_folders:
                uses.add(bare)
            elif rules.folder_of(name) is not None and "." in os.path.basename(name):
                headers.add(name)
            else:
                errors.append(
                    'ARCHITECTURE.md: "%s" in the "may use" cell of %s is neither a folder of the table, '
                    "a header of one, a library the layer check knows (%s), `std` nor `all`"
                    % (name, ", ".join(f + "/" for f in folders), ", ".join(sorted(LIBRARIES)))
                )
        for folder in folders:
            if not names:
                rules.no_code.add(folder)
            if anything:
                rules.anything.add(folder)
            rules.folder_uses[folder] = uses
            rules.header_uses[folder] = headers
            rules.library_uses[folder] = libraries
    return rules, errors


def library_of(path):
    for name, prefixes in LIBRARIES.items():
        if any(path == p or (p.endswith("/") and path.startswith(p)) for p in prefixes):
            return name
    if path.startswith(UNLISTED_LIBRARY_PREFIXES):
        return ""  # a library the check does not know
    return None


def source_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in SKIPPED_DIRS and not (rel_dir == "." and (d == "build" or d.startswith("build-")))
        )
        for name in sorted(filenames):
            if name.endswith(SOURCE_SUFFIXES):
                yield os.path.normpath(os.path.join(rel_dir, name))


def check_includes(root, rules):
    """Every edge the table does not allow, as printable lines."""
    problems = []
    unplaced = set()
    for path in source_files(root):
        folder = rules.folder_of(path)
        if folder is None:
            top = path.split("/")[0] if "/" in path else "."
            if top not in unplaced:
                unplaced.add(top)
                problems.append("%s: %s/ holds C++ but has no row in ARCHITECTURE.md's table" % (path, top))
            continue
        if folder in rules.no_code:
            problems.append(
                '%s: %s/ holds C++ but its "may use" cell names nothing (add the names it uses)' % (path, folder)
            )
            continue
        if folder in rules.anything:
            continue
        with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                quoted, target = m.group(1) == '"', m.group(2)
                where = "%s:%d" % (path, number)
                if quoted:
                    used = rules.folder_of(target)
                    if used is None:
                        if "/" in target and not os.path.exists(os.path.join(root, os.path.dirname(path), target)):
                            problems.append('%s: includes "%s", which is in no folder of the table' % (where, target))
                        continue
                    if used == folder or used in rules.folder_uses[folder] or target in rules.header_uses[folder]:
                        continue
                    problems.append(
                        '%s: %s/ includes "%s", but ARCHITECTURE.md does not let %s/ use %s/'
                        % (where, folder, target, folder, used)
                    )
                else:
                    library = library_of(target)
                    if library is None or library in rules.library_uses[folder]:
                        continue
                    if library == "":
                        problems.append(
                            "%s: includes <%s>, a library the layer check does not know "
                            "(name it in tests/layers/check_layers.py's LIBRARIES and in the table)" % (where, target)
                        )
                        continue
                    problems.append(
                        "%s: %s/ includes <%s>, but ARCHITECTURE.md does not let %s/ use %s"
                        % (where, folder, target, folder, library)
                    )
    return problems


def check_unit_test_names(root, rules):
    problems = []
    unit = os.path.join(root, "tests", "unit")
    if not os.path.isdir(unit):
        return problems
    prefixes = [f.replace("/", "_") + "_" for f in rules.folders]
    for name in sorted(os.listdir(unit)):
        if not (name.startswith("test_") and name.endswith(".cpp")):
            continue
        rest = name[len("test_") : -len(".cpp")]
        if not any(rest.startswith(p) and len(rest) > len(p) for p in prefixes):
            problems.append(
                "tests/unit/%s: not named test_<folder>_<file>.cpp after a folder of ARCHITECTURE.md's table" % name
            )
    return problems


def check(root):
    """All problems found under `root` (the table's own first)."""
    path = os.path.join(root, "ARCHITECTURE.md")
    with open(path, encoding="utf-8") as f:
        rules, errors = parse_architecture(f.read())
    if errors:
        return errors  # a table that does not parse would make every edge look wrong
    return check_includes(root, rules) + check_unit_test_names(root, rules)


def main(argv):
    root = argv[1] if len(argv) > 1 else os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print("\n%d problem(s): fix the include (or the name), or declare the edge in ARCHITECTURE.md's "
              "\"may use\" column and say why" % len(problems))
        return 1
    print("every include follows ARCHITECTURE.md's table")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
