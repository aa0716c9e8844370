// The store's versions: every replaced value is kept (newest first, at most
// k_max_versions), survives a reopen, and can be rolled back; a failed write
// changes nothing; the Go fields of the file are untouched. And the rule that
// a store is never replaced by an empty one: a secrets.age that cannot be
// read, decrypted or parsed stops open() and stays as it was.
#include "store/store.hpp"
#include "temp_dir.hpp"
#include "util/error.hpp"
#include "util/file.hpp"
#include "util/time.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <set>
#include <string>

using namespace std::chrono_literals;
using nlohmann::json;
using store::Store;
using util::Errc;

namespace {

struct Fixture
{
  testutil::TempDir dir;
  util::Paths paths = util::paths_for(dir.path() + "/home");
  util::FakeClock clock;
  std::unique_ptr<Store> store;

  Fixture()
  {
    Store::init(paths, clock);
    store = Store::open(paths, clock);
  }

  void reopen() { store = Store::open(paths, clock); }

  // A value, a second later than the last.
  void put(const std::string& name, const std::string& value, bool force = true)
  {
    clock.advance(1s);
    store->add(name, store::age::SecretBuffer(value), std::nullopt, force);
  }

  std::string value(const std::string& name) const { return std::string(store->find(name)->value.view()); }

  std::vector<std::string> versions(const std::string& name) const
  {
    std::vector<std::string> out;
    for (const auto& v : store->find(name)->versions) {
      out.emplace_back(v.value.view());
    }
    return out;
  }

  // The decrypted plaintext of secrets.age, as `age -d` shows it.
  json document() const
  {
    const auto identities = store::age::parse_identity_file(*util::read_file_if_exists(paths.identity));
    const auto plaintext = store::age::decrypt(*util::read_file_if_exists(paths.secrets), identities);
    return json::parse(plaintext.view());
  }

  // Replaces secrets.age with this plaintext, encrypted to our identity.
  void write_document(const json& doc) const
  {
    const auto identities = store::age::parse_identity_file(*util::read_file_if_exists(paths.identity));
    util::write_file_atomic(paths.secrets, store::age::encrypt({identities.front().recipient()}, doc.dump()));
  }
};

template <typename F>
util::Error thrown(F&& f)
{
  try {
    f();
  } catch (const util::Error& e) {
    return e;
  }
  FAIL("expected util::Error");
  return util::Error(Errc::internal, "unreachable");
}

} // namespace

TEST_CASE("store versions: add --force keeps the replaced values, newest first, with when they were replaced")
{
  Fixture f;
  f.put("tok", "one", false);
  CHECK(f.store->find("tok")->versions.empty());
  f.put("tok", "two");
  const auto second_at = f.clock.now();
  f.put("tok", "three");
  const auto third_at = f.clock.now();
  CHECK(f.value("tok") == "three");
  CHECK(f.versions("tok") == std::vector<std::string>{"two", "one"});
  CHECK(f.store->find("tok")->versions[0].created_at == third_at);
  CHECK(f.store->find("tok")->versions[1].created_at == second_at);
  // Putting back the same bytes replaces nothing.
  f.put("tok", "three");
  CHECK(f.versions("tok") == std::vector<std::string>{"two", "one"});
}

TEST_CASE("store versions: at most five are kept; the oldest goes first")
{
  Fixture f;
  for (int i = 1; i <= 8; ++i) {
    f.put("tok", "v" + std::to_string(i), i > 1);
  }
  CHECK(f.value("tok") == "v8");
  CHECK(f.versions("tok") == std::vector<std::string>{"v7", "v6", "v5", "v4", "v3"});
  CHECK(store::k_max_versions == 5);
}

TEST_CASE("store versions: a rotation that changes the value keeps the old one; an unchanged one keeps nothing")
{
  Fixture f;
  f.put("tok", "before", false);
  f.clock.advance(1s);
  f.store->mark_rotated("tok", std::nullopt);
  CHECK(f.store->find("tok")->versions.empty());
  f.store->mark_rotated("tok", store::age::SecretBuffer("before"));
  CHECK(f.store->find("tok")->versions.empty());
  f.clock.advance(1s);
  f.store->mark_rotated("tok", store::age::SecretBuffer("hook printed this"));
  CHECK(f.value("tok") == "hook printed this");
  CHECK(f.versions("tok") == std::vector<std::string>{"before"});
  CHECK(f.store->find("tok")->info.last_rotated == f.clock.now());
}

TEST_CASE("store versions: rollback restores a version and keeps the value it replaces")
{
  Fixture f;
  f.put("tok", "a", false);
  f.put("tok", "b");
  f.put("tok", "c");
  const auto b_replaced = f.store->find("tok")->versions[0].created_at;
  const auto generation = f.store->generation();
  f.clock.advance(1s);
  CHECK(f.store->rollback("tok", 1) == b_replaced);
  CHECK(f.value("tok") == "b");
  CHECK(f.versions("tok") == std::vector<std::string>{"c", "a"});
  CHECK(f.store->find("tok")->versions[0].created_at == f.clock.now());
  CHECK(f.store->find("tok")->info.updated_at == f.clock.now());
  CHECK(f.store->generation() > generation);
  // A rollback is itself undone by the next one.
  f.store->rollback("tok", 1);
  CHECK(f.value("tok") == "c");
  CHECK(f.versions("tok") == std::vector<std::string>{"b", "a"});
  // --to N reaches further back; the count stays the same.
  f.store->rollback("tok", 2);
  CHECK(f.value("tok") == "a");
  CHECK(f.versions("tok") == std::vector<std::string>{"c", "b"});
  // All of it is in the file.
  f.reopen();
  CHECK(f.value("tok") == "a");
  CHECK(f.versions("tok") == std::vector<std::string>{"c", "b"});
}

TEST_CASE("store versions: rollback refuses an unknown secret, a secret without versions and a missing number")
{
  Fixture f;
  CHECK(thrown([&] { f.store->rollback("nope", 1); }).code() == Errc::not_found);
  f.put("tok", "a", false);
  const auto none = thrown([&] { f.store->rollback("tok", 1); });
  CHECK(none.code() == Errc::invalid_params);
  CHECK(none.fix() == "secrets versions tok");
  f.put("tok", "b");
  f.put("tok", "c");
  for (const size_t n : {size_t{0}, size_t{3}, size_t{99}}) {
    const auto e = thrown([&] { f.store->rollback("tok", n); });
    CHECK(e.code() == Errc::invalid_params);
    CHECK(std::string(e.what()).find("versions 1 to 2") != std::string::npos);
  }
  CHECK(f.value("tok") == "c");
  CHECK(f.versions("tok") == std::vector<std::string>{"b", "a"});
}

TEST_CASE("store versions: a proxy-only secret stays proxy-only through a rollback")
{
  Fixture f;
  store::ProxySpec spec{"https://api.example.com", {"GET"}, {"/v1"}, "bearer"};
  f.store->add("api", store::age::SecretBuffer("raw-before"), std::nullopt, false);
  f.clock.advance(1s);
  f.store->add("api", store::age::SecretBuffer("proxied"), std::nullopt, true, spec);
  f.store->rollback("api", 1);
  CHECK(f.value("api") == "raw-before");
  REQUIRE(f.store->find("api")->info.proxy);
  CHECK(*f.store->find("api")->info.proxy == spec);
  f.reopen();
  REQUIRE(f.store->find("api")->info.proxy);
  CHECK(f.versions("api") == std::vector<std::string>{"proxied"});
}

TEST_CASE("store versions: the file keeps the Go fields as they were and adds versions beside them")
{
  Fixture f;
  f.put("plain", "only", false);
  f.clock.advance(1s);
  f.store->add("tok", store::age::SecretBuffer("one"), std::string("echo next"), false);
  f.put("tok", "two");
  const json doc = f.document();
  CHECK(doc["version"] == 1);
  const auto& plain = doc["secrets"]["plain"];
  std::set<std::string> keys;
  for (const auto& [k, v] : plain.items()) {
    keys.insert(k);
  }
  // A secret never replaced has no versions member: exactly the Go schema.
  CHECK(keys == std::set<std::string>{"name", "created_at", "updated_at", "last_rotated", "value"});
  const auto& tok = doc["secrets"]["tok"];
  CHECK(tok["name"] == "tok");
  CHECK(tok["value"] == "two");
  CHECK(tok["rotate_via"] == "echo next");
  CHECK(tok["last_rotated"] == "0001-01-01T00:00:00Z");
  CHECK(util::parse_rfc3339(tok["created_at"].get<std::string>()));
  CHECK(util::parse_rfc3339(tok["updated_at"].get<std::string>()));
  REQUIRE(tok["versions"].is_array());
  REQUIRE(tok["versions"].size() == 1);
  CHECK(tok["versions"][0]["value"] == "one");
  CHECK(util::parse_rfc3339(tok["versions"][0]["created_at"].get<std::string>()) == f.clock.now());
  CHECK(tok["versions"][0].size() == 2);
}

TEST_CASE("store versions: remove drops them with the secret")
{
  Fixture f;
  f.put("tok", "a", false);
  f.put("tok", "b");
  f.store->remove("tok");
  f.put("tok", "c", false);
  CHECK(f.store->find("tok")->versions.empty());
  CHECK(f.document()["secrets"]["tok"].count("versions") == 0);
}

TEST_CASE("store versions: a failed write leaves value and versions as they were")
{
  Fixture f;
  f.put("tok", "a", false);
  f.put("tok", "b");
  const auto before = *util::read_file_if_exists(f.paths.secrets);
  // A directory where secrets.age goes: the atomic rename fails.
  REQUIRE(::rename(f.paths.secrets.c_str(), (f.paths.secrets + ".moved").c_str()) == 0);
  REQUIRE(::mkdir(f.paths.secrets.c_str(), 0700) == 0);
  ::mkdir((f.paths.secrets + "/x").c_str(), 0700); // not empty, so rename(2) cannot replace it
  const auto generation = f.store->generation();
  CHECK_THROWS(f.put("tok", "c"));
  CHECK_THROWS(f.store->rollback("tok", 1));
  CHECK_THROWS(f.store->mark_rotated("tok", store::age::SecretBuffer("d")));
  CHECK(f.store->generation() > generation);
  CHECK(f.value("tok") == "b");
  CHECK(f.versions("tok") == std::vector<std::string>{"a"});
  ::rmdir((f.paths.secrets + "/x").c_str());
  ::rmdir(f.paths.secrets.c_str());
  REQUIRE(::rename((f.paths.secrets + ".moved").c_str(), f.paths.secrets.c_str()) == 0);
  CHECK(*util::read_file_if_exists(f.paths.secrets) == before);
  f.store->rollback("tok", 1);
  CHECK(f.value("tok") == "a");
}

TEST_CASE("store versions: a malformed versions member stops the load and the file is kept")
{
  Fixture f;
  f.put("tok", "a", false);
  f.put("tok", "b");
  json doc = f.document();
  for (const json& bad : {json("x"), json::array({1}), json::array({{{"value", "a"}}}),
                          json::array({{{"value", 1}, {"created_at", "2024-01-01T00:00:00Z"}}}),
                          json::array({{{"value", "a"}, {"created_at", "yesterday"}}})}) {
    doc["secrets"]["tok"]["versions"] = bad;
    f.write_document(doc);
    const auto written = *util::read_file_if_exists(f.paths.secrets);
    const auto e = thrown([&] { f.reopen(); });
    CHECK(e.code() == Errc::decryption);
    CHECK(std::string(e.what()).find("malformed \"versions\"") != std::string::npos);
    CHECK(*util::read_file_if_exists(f.paths.secrets) == written);
  }
  // null (or no member) is no versions.
  doc["secrets"]["tok"]["versions"] = nullptr;
  f.write_document(doc);
  f.reopen();
  CHECK(f.store->find("tok")->versions.empty());
}

TEST_CASE("store: state.json gets the same symlink and permission checks as the other files")
{
  Fixture f;
  util::write_file_atomic(f.paths.state, "{}");
  ::chmod(f.paths.state.c_str(), 0640);
  CHECK(thrown([&] { f.reopen(); }).fix() == "chmod 600 " + f.paths.state);
  ::unlink(f.paths.state.c_str());
  REQUIRE(::symlink(f.paths.leases.c_str(), f.paths.state.c_str()) == 0);
  CHECK(std::string(thrown([&] { f.reopen(); }).what()).find("symbolic link") != std::string::npos);
}

namespace {

struct FileState
{
  std::string bytes;
  ino_t inode = 0;
  bool operator==(const FileState&) const = default;
};

FileState file_state(const std::string& path)
{
  struct stat st{};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return {util::read_file(path), st.st_ino};
}

} // namespace

TEST_CASE("store: a secrets.age that does not decrypt or parse stops open() and is never replaced")
{
  Fixture f;
  f.put("tok", "value", false);
  const auto good = *util::read_file_if_exists(f.paths.secrets);
  const auto other = store::age::X25519Identity::generate();
  const auto ours = store::age::parse_identity_file(*util::read_file_if_exists(f.paths.identity));
  struct Case
  {
    const char* what;
    std::string bytes;
  };
  const std::vector<Case> cases = {
    {"not an age file", "this is not an age file\n"},
    {"an empty file", ""},
    {"cut short", good.substr(0, good.size() / 2)},
    {"one byte changed", [&] {
       std::string b = good;
       b[b.size() - 20] = static_cast<char>(b[b.size() - 20] ^ 1);
       return b;
     }()},
    {"encrypted to another identity", store::age::encrypt({other.recipient()}, R"({"version":1,"secrets":{}})")},
    {"decrypts to no JSON", store::age::encrypt({ours.front().recipient()}, "not json")},
    {"decrypts to JSON without secrets", store::age::encrypt({ours.front().recipient()}, R"({"version":1})")},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    util::write_file_atomic(f.paths.secrets, c.bytes);
    const auto before = file_state(f.paths.secrets);
    const auto e = thrown([&] { f.reopen(); });
    CHECK(e.code() == Errc::decryption);
    CHECK(std::string(e.what()).find(f.paths.secrets) != std::string::npos);
    CHECK(e.fix() == "restore " + f.paths.secrets + " from a backup; the daemon will not replace it");
    CHECK(file_state(f.paths.secrets) == before);
    // Nothing else can write an empty store there either: init refuses a
    // home with an identity, and a second open fails the same way.
    CHECK(thrown([&] { Store::init(f.paths, f.clock); }).code() == Errc::already_exists);
    CHECK(thrown([&] { f.reopen(); }).code() == Errc::decryption);
    CHECK(file_state(f.paths.secrets) == before);
  }
  // The file restored from a backup: the next save writes its secrets back, not an empty store.
  util::write_file_atomic(f.paths.secrets, good);
  f.reopen();
  f.put("second", "value2", false);
  f.reopen();
  CHECK(f.value("tok") == "value");
  CHECK(f.value("second") == "value2");
}

TEST_CASE("store: a secrets.age that cannot be read, or whose identity is gone, stops open() and is never replaced")
{
  Fixture f;
  f.put("tok", "value", false);
  const auto before = file_state(f.paths.secrets);

  // Unreadable: a directory where the file goes (we may run as root, for whom modes do not stop a read).
  REQUIRE(::rename(f.paths.secrets.c_str(), (f.paths.secrets + ".real").c_str()) == 0);
  REQUIRE(::mkdir(f.paths.secrets.c_str(), 0700) == 0);
  CHECK_THROWS_AS(f.reopen(), util::Error);
  CHECK(std::filesystem::is_directory(f.paths.secrets));
  CHECK(std::filesystem::is_empty(f.paths.secrets));
  REQUIRE(::rmdir(f.paths.secrets.c_str()) == 0);
  REQUIRE(::rename((f.paths.secrets + ".real").c_str(), f.paths.secrets.c_str()) == 0);
  CHECK(file_state(f.paths.secrets) == before);

  // No identity: open names the missing file, and init will not write a new
  // identity and an empty store over a secrets.age it could not decrypt.
  REQUIRE(::rename(f.paths.identity.c_str(), (f.paths.identity + ".away").c_str()) == 0);
  const auto e = thrown([&] { f.reopen(); });
  CHECK(e.code() == Errc::decryption);
  CHECK(std::string(e.what()).find("no identity") != std::string::npos);
  const auto refused = thrown([&] { Store::init(f.paths, f.clock); });
  CHECK(refused.code() == Errc::already_exists);
  CHECK(std::string(refused.what()).find("refusing to overwrite it") != std::string::npos);
  CHECK(file_state(f.paths.secrets) == before);
  CHECK_FALSE(util::read_file_if_exists(f.paths.identity).has_value());

  // The identity back: everything is there.
  REQUIRE(::rename((f.paths.identity + ".away").c_str(), f.paths.identity.c_str()) == 0);
  f.reopen();
  CHECK(f.value("tok") == "value");
}

TEST_CASE("store: only an absent secrets.age means no secrets yet")
{
  Fixture f;
  f.put("tok", "value", false);
  REQUIRE(::unlink(f.paths.secrets.c_str()) == 0);
  f.reopen();
  CHECK(f.store->size() == 0);
  // Go writes "secrets": null for a store that never held one: empty, not an error.
  f.write_document(json{{"version", 1}, {"secrets", nullptr}});
  f.reopen();
  CHECK(f.store->size() == 0);
}

TEST_CASE("store: set_rotate_via records and clears a hook, keeping the value, its versions and dates, across a reopen")
{
  Fixture f;
  f.put("tok", "a", false);
  f.put("tok", "b");
  const auto created = f.store->find("tok")->info.created_at;
  f.clock.advance(1s);
  f.store->set_rotate_via("tok", "printf new");
  f.reopen();
  const auto* tok = f.store->find("tok");
  REQUIRE(tok != nullptr);
  CHECK(tok->info.rotate_via == "printf new");
  CHECK(tok->info.created_at == created);
  CHECK_FALSE(tok->info.last_rotated);
  CHECK(f.value("tok") == "b");
  CHECK(f.versions("tok") == std::vector<std::string>{"a"});
  f.store->set_rotate_via("tok", "");
  f.reopen();
  CHECK(f.store->find("tok")->info.rotate_via.empty());
  CHECK(thrown([&] { f.store->set_rotate_via("nope", "true"); }).code() == Errc::not_found);
}

TEST_CASE("store: an unknown secret is not_found, a name that could never be one is invalid_params")
{
  const auto missing = store::unknown_secret("api_key");
  CHECK(missing.code() == Errc::not_found);
  CHECK(missing.fix() == "secrets list");
  const auto bad = store::unknown_secret("bad name\n");
  CHECK(bad.code() == Errc::invalid_params);
  CHECK(std::string(bad.what()).find("\"bad name\\n\"") != std::string::npos); // quoted, not cut by the line break
  CHECK(bad.fix() == "secrets list");
}
