/* C++ through operator new and delete: a std::map<int, std::string> churned (inserts and
 * erases of random keys, strings past the small-string buffer), a std::vector of
 * unique_ptr objects rebuilt each round, and std::list nodes. Fixed work, no arguments. */
#include "common.h"
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

struct Item {
    long id;
    char pad[40];
};

int main() {
    print_served_by();
    uint64_t seed = 2026;
    std::map<int, std::string> map;
    long sum = 0;
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < 20000; i++) {
            int key = (int)(rng_next(&seed) % 50000);
            if (rng_next(&seed) % 3 == 0)
                map.erase(key);
            else
                map[key] = std::string(16 + rng_next(&seed) % 48, 'x');
        }
        std::vector<std::unique_ptr<Item>> items;
        for (int i = 0; i < 5000; i++)
            items.push_back(std::make_unique<Item>(Item{i, {0}}));
        std::list<int> list;
        for (int i = 0; i < 5000; i++)
            list.push_back(i);
        sum += (long)map.size() + (long)items.size() + (long)list.size();
    }
    printf("%ld\n", sum);
    return 0;
}
