#include "core/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace ringmail {
namespace {

class ConfigFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ringmail-config-XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    close(fd);
    path_ = tmpl;
  }
  void TearDown() override { unlink(path_.c_str()); }
  std::string load(const std::string& json) {
    std::ofstream(path_) << json;
    Config c;
    std::string error;
    if (c.load_file(path_, &error)) {
      loaded_ = c;
      return "";
    }
    return error;
  }
  std::string path_;
  Config loaded_;
};

TEST_F(ConfigFile, ReadsEveryKindOfSetting) {
  EXPECT_EQ(load(R"({"data_dir": "/srv/mail", "imap_listen": "[::1]:143", "threads": 2,
                     "idle_timeout_s": 3600, "log_level": "warn"})"),
            "");
  EXPECT_EQ(loaded_.data_dir, "/srv/mail");
  EXPECT_EQ(loaded_.imap_listen, "[::1]:143");
  EXPECT_EQ(loaded_.threads, 2);
  EXPECT_EQ(loaded_.idle_timeout_s, 3600);
  EXPECT_EQ(loaded_.log_level, "warn");
  EXPECT_EQ(loaded_.preauth_timeout_s, 60);  // untouched defaults stay
}

TEST_F(ConfigFile, AnUnknownKeyIsNamed) {
  EXPECT_EQ(load(R"({"threads": 2, "thread": 3})"),
            "config " + path_ + ": key \"thread\": unknown key");
}

TEST_F(ConfigFile, AWrongTypeIsNamed) {
  EXPECT_EQ(load(R"({"threads": "two"})"),
            "config " + path_ + ": key \"threads\": expected an integer from 0 to 1024");
  EXPECT_EQ(load(R"({"data_dir": 7})"),
            "config " + path_ + ": key \"data_dir\": expected a string");
}

TEST_F(ConfigFile, ABadValueIsNamed) {
  EXPECT_EQ(load(R"({"threads": 5000})"),
            "config " + path_ + ": key \"threads\": expected an integer from 0 to 1024, got 5000");
  EXPECT_EQ(load(R"({"imap_listen": "localhost"})"),
            "config " + path_ +
                ": key \"imap_listen\": expected HOST:PORT (an IP address or localhost, port "
                "0-65535), got \"localhost\"");
  EXPECT_EQ(load(R"({"log_level": "loud"})"),
            "config " + path_ +
                ": key \"log_level\": expected one of debug, info, warn, error, got \"loud\"");
}

TEST_F(ConfigFile, BrokenJsonAndAMissingFileAreReported) {
  EXPECT_EQ(load(R"({"threads": 2,)").rfind("config " + path_ + ": not valid JSON: ", 0), 0u);
  EXPECT_EQ(load("[1, 2]"), "config " + path_ + ": expected a JSON object at the top level");
  Config c;
  std::string error;
  EXPECT_FALSE(c.load_file("/nonexistent/ringmail.json", &error));
  EXPECT_EQ(error, "config /nonexistent/ringmail.json: cannot read: No such file or directory");
}

TEST(ConfigFlags, FlagsUseTheSameChecks) {
  Config c;
  std::string error;
  EXPECT_TRUE(c.set("threads", "3", "flag --threads", &error));
  EXPECT_EQ(c.threads, 3);
  EXPECT_FALSE(c.set("threads", "3x", "flag --threads", &error));
  EXPECT_EQ(error, "flag --threads: expected an integer from 0 to 1024, got \"3x\"");
  EXPECT_FALSE(c.set("nonsense", "1", "flag --nonsense", &error));
  EXPECT_EQ(error, "flag --nonsense: unknown setting");
}

TEST(ListenAddress, ParsesIpv4Ipv6AndLocalhost) {
  ListenAddress a;
  EXPECT_TRUE(parse_listen_address("127.0.0.1:1143", &a));
  EXPECT_EQ(a.addr.ss_family, AF_INET);
  EXPECT_TRUE(parse_listen_address("[::1]:0", &a));
  EXPECT_EQ(a.addr.ss_family, AF_INET6);
  EXPECT_TRUE(parse_listen_address("localhost:993", &a));
  EXPECT_FALSE(parse_listen_address("127.0.0.1:65536", &a));
  EXPECT_FALSE(parse_listen_address("127.0.0.1:", &a));
  EXPECT_FALSE(parse_listen_address("mail.example.com:143", &a));
  EXPECT_FALSE(parse_listen_address(":143", &a));
}

}  // namespace
}  // namespace ringmail
