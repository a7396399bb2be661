#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "core/mpmc_queue.h"
#include "core/spsc_ring.h"

namespace ringmail {
namespace {

TEST(SpscRing, RefusesAPushWhenFullAndKeepsOrder) {
  SpscRing<int> r(4);
  for (int i = 0; i < 4; i++) EXPECT_TRUE(r.push(i));
  EXPECT_FALSE(r.push(99));
  int v = -1;
  EXPECT_TRUE(r.pop(&v));
  EXPECT_EQ(v, 0);
  EXPECT_TRUE(r.push(4));
  for (int want = 1; want <= 4; want++) {
    ASSERT_TRUE(r.pop(&v));
    EXPECT_EQ(v, want);
  }
  EXPECT_FALSE(r.pop(&v));
  EXPECT_TRUE(r.empty());
}

// One producer, one consumer, a small ring: every value arrives once, in order.
TEST(SpscRing, TransfersEveryValueInOrderBetweenTwoThreads) {
  constexpr uint64_t kCount = 2000000;
  SpscRing<uint64_t> r(64);
  std::thread producer([&] {
    for (uint64_t i = 0; i < kCount; i++)
      while (!r.push(i)) std::this_thread::yield();
  });
  uint64_t next = 0;
  while (next < kCount) {
    uint64_t v;
    if (r.pop(&v)) {
      ASSERT_EQ(v, next);
      next++;
    }
  }
  producer.join();
  EXPECT_TRUE(r.empty());
}

TEST(MpmcQueue, RefusesWhenFullAndWhenEmpty) {
  MpmcQueue<int> q(2);
  int v;
  EXPECT_FALSE(q.pop(&v));
  EXPECT_TRUE(q.push(1));
  EXPECT_TRUE(q.push(2));
  EXPECT_FALSE(q.push(3));
  EXPECT_TRUE(q.pop(&v));
  EXPECT_EQ(v, 1);
}

// Four producers and four consumers: the multiset of values taken equals the one pushed.
TEST(MpmcQueue, ManyProducersAndConsumersLoseAndDuplicateNothing) {
  constexpr int kProducers = 4, kConsumers = 4, kPerProducer = 200000;
  MpmcQueue<int> q(128);
  std::vector<std::atomic<int>> seen(kProducers * kPerProducer);
  std::atomic<int> taken{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; p++)
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; i++)
        while (!q.push(p * kPerProducer + i)) std::this_thread::yield();
    });
  for (int c = 0; c < kConsumers; c++)
    threads.emplace_back([&] {
      int v;
      while (taken.load() < kProducers * kPerProducer) {
        if (q.pop(&v)) {
          seen[v].fetch_add(1);
          taken.fetch_add(1);
        }
      }
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < seen.size(); i++) ASSERT_EQ(seen[i].load(), 1) << i;
}

}  // namespace
}  // namespace ringmail
