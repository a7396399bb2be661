#include "core/routing_table.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace ringmail {
namespace {

TEST(RoutingTable, FirstLoginPicksTheLeastLoadedCore) {
  RoutingTable t(3, 1024);
  EXPECT_EQ(t.owner("alice"), 0u);
  EXPECT_EQ(t.owner("bob"), 1u);
  EXPECT_EQ(t.owner("carol"), 2u);
  EXPECT_EQ(t.owner("dave"), 0u);
  EXPECT_EQ(t.users_on(0), 2u);
  EXPECT_EQ(t.users_on(1), 1u);
}

TEST(RoutingTable, AnAssignedUserKeepsItsCore) {
  RoutingTable t(2, 1024);
  uint32_t a = t.owner("alice");
  t.owner("bob");
  t.owner("carol");
  EXPECT_EQ(t.owner("alice"), a);
  EXPECT_EQ(t.find("alice"), a);
  EXPECT_EQ(t.find("nobody"), std::nullopt);
}

TEST(RoutingTable, AFullNeighbourhoodFallsBackToAStablePlacement) {
  RoutingTable t(4, RoutingTable::kProbesMax);  // the smallest table: every probe shares slots
  std::vector<uint32_t> first;
  for (int i = 0; i < 200; i++) first.push_back(t.owner("user" + std::to_string(i)));
  for (int i = 0; i < 200; i++) EXPECT_EQ(t.owner("user" + std::to_string(i)), first[i]) << i;
}

// Many threads log in the same users at once: each user must end up with exactly one owner,
// seen alike by every thread, and the per-core counts must add up to the number of users.
TEST(RoutingTable, ConcurrentReadersAndWritersAgreeOnEveryOwner) {
  constexpr int kThreads = 8;
  constexpr int kUsers = 20000;
  RoutingTable t(4, 1 << 16);
  std::vector<std::vector<uint32_t>> seen(kThreads, std::vector<uint32_t>(kUsers));
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; th++) {
    threads.emplace_back([&, th] {
      while (!go.load()) {
      }
      for (int k = 0; k < kUsers; k++) {
        int u = (k * 7919 + th * 104729) % kUsers;  // a different order in every thread
        std::string name = "u" + std::to_string(u);
        seen[th][u] = (th % 2) ? t.owner(name) : t.find(name).value_or(t.owner(name));
      }
    });
  }
  go = true;
  for (auto& th : threads) th.join();
  uint64_t total = 0;
  for (uint32_t c = 0; c < 4; c++) total += t.users_on(c);
  EXPECT_EQ(total, static_cast<uint64_t>(kUsers));
  for (int u = 0; u < kUsers; u++) {
    for (int th = 1; th < kThreads; th++) ASSERT_EQ(seen[th][u], seen[0][u]) << "user " << u;
    EXPECT_EQ(t.find("u" + std::to_string(u)), seen[0][u]);
  }
  for (uint32_t c = 0; c < 4; c++) EXPECT_NEAR(t.users_on(c), kUsers / 4, kUsers / 8);
}

}  // namespace
}  // namespace ringmail
