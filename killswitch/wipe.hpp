#pragma once
// `revoke --all --wipe`: destroy the store so that nothing on this disk can
// decrypt the secrets any more.

#include <string>
#include <vector>

namespace killswitch {

// Overwrites the file's bytes with zeros, fsyncs, unlinks it and fsyncs its
// directory. Returns false if the file did not exist; throws util::Error on
// failure. (On copy-on-write or journaling file systems an overwrite is not
// a guarantee; unlinking the identity is what makes the store unreadable.)
bool wipe_file(const std::string& path);

} // namespace killswitch
