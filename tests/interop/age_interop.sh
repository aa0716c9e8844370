#!/usr/bin/env bash
# Interop between store::age (driven through the test-only age_tool) and the
# reference `age` 1.1.1 binaries, both ways: X25519 binary and armored at every
# chunk boundary and ~1 MB, identity files through age-keygen, and passphrases.
# `age -p` reads passphrases only from a terminal, so it runs under `script`.
# Needs BUILD_DIR (set by ctest). Prints "N passed, M failed".
set -uo pipefail

: "${BUILD_DIR:?set BUILD_DIR to the CMake build directory}"
tool="$BUILD_DIR/tests/age_tool"
if [ ! -x "$tool" ]; then
  echo "age_interop: error: $tool not found (build the age_tool target)" >&2
  exit 1
fi
for cmd in age age-keygen script sha256sum; do
  if ! command -v "$cmd" >/dev/null; then
    echo "age_interop: error: $cmd not found" >&2
    exit 1
  fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
sizes=(0 1 65535 65536 65537 131072 1000000)
# scrypt at 2^18 takes seconds per run, and the payload code is the same as
# for X25519, so passphrases run at the sizes that matter most: empty (a lone
# empty final chunk), exactly one full final chunk, and ~1 MB.
passphrase_sizes=" 0 65536 1000000 "
passphrase='correct horse battery staple'

pass() { passed=$((passed + 1)); }
fail() {
  failed=$((failed + 1))
  echo "FAIL $1"
}
sha() { sha256sum <"$1" | cut -d' ' -f1; }
# same NAME WANT_FILE GOT_FILE: the plaintexts have the same SHA-256.
same() {
  if [ -f "$3" ] && [ "$(sha "$2")" = "$(sha "$3")" ]; then pass; else fail "$1"; fi
}
# `age -d -o FILE` creates no file for an empty plaintext.
age_decrypt() { # IDFILE IN OUT
  rm -f "$3"
  age -d -i "$1" -o "$3" "$2" && { [ -f "$3" ] || : >"$3"; }
}
age_decrypt_passphrase() { # IN OUT
  rm -f "$2"
  printf '%s\n' "$passphrase" | script -qec "age -d -o '$2' '$1'" /dev/null >/dev/null &&
    { [ -f "$2" ] || : >"$2"; }
}
age_encrypt_passphrase() { # IN OUT (the passphrase twice: age asks to confirm it)
  printf '%s\n%s\n' "$passphrase" "$passphrase" |
    script -qec "age -p -o '$2' '$1'" /dev/null >/dev/null
}

# Identity files, both ways.
"$tool" keygen "$tmp/ours.key" || fail "age_tool keygen"
age-keygen -o "$tmp/theirs.key" 2>/dev/null || fail "age-keygen"
ours=$("$tool" recipient "$tmp/ours.key")
theirs=$(age-keygen -y "$tmp/theirs.key")
if [ -n "$ours" ] && [ "$(age-keygen -y "$tmp/ours.key")" = "$ours" ]; then
  pass
else
  fail "age-keygen -y reads our identity file"
fi
if [ -n "$theirs" ] && [ "$("$tool" recipient "$tmp/theirs.key")" = "$theirs" ]; then
  pass
else
  fail "we read age-keygen's identity file"
fi

for size in "${sizes[@]}"; do
  plain="$tmp/plain.$size"
  head -c "$size" /dev/urandom >"$plain"

  # ours -> age
  "$tool" encrypt -r "$theirs" <"$plain" >"$tmp/ours.age" &&
    age_decrypt "$tmp/theirs.key" "$tmp/ours.age" "$tmp/out"
  same "size $size: ours encrypts, age -d decrypts" "$plain" "$tmp/out"
  "$tool" encrypt -a -r "$theirs" <"$plain" >"$tmp/ours.age.asc" &&
    age_decrypt "$tmp/theirs.key" "$tmp/ours.age.asc" "$tmp/out"
  same "size $size: ours encrypts armored, age -d decrypts" "$plain" "$tmp/out"

  # age -> ours
  rm -f "$tmp/out"
  age -r "$ours" -o "$tmp/theirs.age" "$plain" &&
    "$tool" decrypt -i "$tmp/ours.key" <"$tmp/theirs.age" >"$tmp/out"
  same "size $size: age -r encrypts, ours decrypts" "$plain" "$tmp/out"
  rm -f "$tmp/out"
  age -a -r "$ours" -o "$tmp/theirs.age.asc" "$plain" &&
    "$tool" decrypt -i "$tmp/ours.key" <"$tmp/theirs.age.asc" >"$tmp/out"
  same "size $size: age -a -r encrypts, ours decrypts" "$plain" "$tmp/out"

  # Each side refuses a file that is not for it.
  if "$tool" decrypt -i "$tmp/ours.key" <"$tmp/ours.age" >/dev/null 2>&1; then
    fail "size $size: ours decrypts a file for another recipient"
  else
    pass
  fi

  # Passphrases, both ways, at age's default work factor (2^18).
  [[ "$passphrase_sizes" == *" $size "* ]] || continue
  AGE_TOOL_PASSPHRASE="$passphrase" "$tool" encrypt -p <"$plain" >"$tmp/ours.pw.age" &&
    age_decrypt_passphrase "$tmp/ours.pw.age" "$tmp/out"
  same "size $size: ours encrypts with a passphrase, age -d decrypts" "$plain" "$tmp/out"
  rm -f "$tmp/out"
  age_encrypt_passphrase "$plain" "$tmp/theirs.pw.age" &&
    AGE_TOOL_PASSPHRASE="$passphrase" "$tool" decrypt -p <"$tmp/theirs.pw.age" >"$tmp/out"
  same "size $size: age -p encrypts, ours decrypts" "$plain" "$tmp/out"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
