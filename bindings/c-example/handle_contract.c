/* handle_contract.c — the handle promises of slay.h ("Handles"), from C through libslay.so:
 * a freed handle, a second free, a handle whose slot was reused by a new object, a handle of the
 * other type and values that were never handles are all refused with SLAY_ERR_INVALID_ARGUMENT
 * (free: a no-op), never crash, and never act on another live object. Many cycles of create and
 * free, so that the allocator reuses addresses and the library reuses handle slots.
 *
 * Prints "N passed, M failed"; exits 1 if M > 0. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "slay.h"

static int n_pass, n_fail;
#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (cond) { n_pass++; } else {                                            \
            n_fail++; printf("FAIL handle_contract.c:%d: ", __LINE__);            \
            printf(__VA_ARGS__); putchar('\n');                                   \
        }                                                                         \
    } while (0)

static slay_feature_map* new_map(int64_t head_dim, uint64_t seed) {
    slay_feature_map_params p;
    slay_feature_map* fm = NULL;
    slay_error e;
    if (slay_feature_map_params_init(&p) != SLAY_OK) return NULL;
    p.head_dim = head_dim;
    p.seed = seed;
    if (slay_feature_map_create(&p, &fm, &e) != SLAY_OK) return NULL;
    return fm;
}

static int64_t dim_of(slay_feature_map* fm, int32_t* status) {
    int64_t dim = -1;
    slay_error e;
    *status = slay_feature_map_dim(fm, &dim, &e);
    return dim;
}

static uint64_t identity_of(slay_feature_map* fm, int32_t* status) {
    uint64_t identity = 0;
    slay_error e;
    *status = slay_feature_map_identity(fm, &identity, &e);
    return identity;
}

static int64_t state_seqs(slay_state* state, int32_t* status) {
    int64_t n = -1, h = -1, m = -1, dv = -1;
    slay_error e;
    memset(&e, 0, sizeof e);
    *status = slay_state_dims(state, &n, &h, &m, &dv, &e);
    if (*status != SLAY_OK) CHECK(e.message[0] != 0, "a refused handle comes with a message");
    return n;
}

static void test_feature_map_handles(void) {
    int32_t status;
    slay_error e;
    /* Use after free and double free. */
    slay_feature_map* old = new_map(4, 1);
    CHECK(old != NULL, "create");
    slay_feature_map_free(old);
    dim_of(old, &status);
    CHECK(status == SLAY_ERR_INVALID_ARGUMENT, "dim of a freed map -> %d", (int)status);
    identity_of(old, &status);
    CHECK(status == SLAY_ERR_INVALID_ARGUMENT, "identity of a freed map -> %d", (int)status);
    slay_feature_map_free(old);   /* double free: a no-op */
    slay_feature_map_free(old);

    /* Reuse: many new maps after the free, each different from the old one; the stale handle
     * never reaches any of them, and freeing it again never frees a live one. */
    for (int cycle = 0; cycle < 200; cycle++) {
        slay_feature_map* fresh = new_map(4 + cycle % 3, 100 + (uint64_t)cycle);
        CHECK(fresh != NULL, "create in cycle %d", cycle);
        CHECK(fresh != old, "cycle %d: a new map never gets a freed map's handle", cycle);
        uint64_t id = identity_of(fresh, &status);
        dim_of(old, &status);
        CHECK(status == SLAY_ERR_INVALID_ARGUMENT, "cycle %d: stale handle -> %d", cycle, (int)status);
        slay_feature_map_free(old);   /* must not free `fresh` */
        uint64_t again = identity_of(fresh, &status);
        CHECK(status == SLAY_OK && again == id, "cycle %d: the live map survived a stale free", cycle);
        slay_feature_map* previous = fresh;
        slay_feature_map_free(fresh);
        dim_of(previous, &status);
        CHECK(status == SLAY_ERR_INVALID_ARGUMENT, "cycle %d: freed -> %d", cycle, (int)status);
    }

    /* Values that were never handles, and a state passed as a map. */
    slay_feature_map* live = new_map(4, 7);
    slay_state* state = NULL;
    CHECK(slay_state_create(live, 2, 4, 1, &state, &e) == SLAY_OK, "state create: %s", e.message);
    uint64_t fake_values[] = {1, 0x10, 0xFFFFFFFFFFFFFFF5u, (uint64_t)(uintptr_t)&e, (uint64_t)(uintptr_t)&status};
    for (size_t i = 0; i < sizeof fake_values / sizeof fake_values[0]; i++) {
        slay_feature_map* fake = (slay_feature_map*)(uintptr_t)fake_values[i];
        dim_of(fake, &status);
        CHECK(status == SLAY_ERR_INVALID_ARGUMENT, "never-a-handle %zu -> %d", i, (int)status);
        slay_feature_map_free(fake);   /* a no-op, and `live` survives */
    }
    dim_of((slay_feature_map*)state, &status);
    CHECK(status == SLAY_ERR_INVALID_ARGUMENT, "a state passed as a map -> %d", (int)status);
    slay_feature_map_free((slay_feature_map*)state);   /* must not free anything */
    CHECK(state_seqs(state, &status) == 2 && status == SLAY_OK, "the state survived being freed as a map");
    dim_of(live, &status);
    CHECK(status == SLAY_OK, "the live map survived every bogus free");

    /* A state keeps its map alive: freeing the map handle does not break the state. */
    slay_feature_map_free(live);
    CHECK(state_seqs(state, &status) == 2 && status == SLAY_OK, "state after its map's handle was freed");
    slay_state_free(state);
}

static void test_state_handles(void) {
    int32_t status;
    slay_error e;
    slay_feature_map* fm = new_map(4, 3);
    slay_state* old = NULL;
    CHECK(slay_state_create(fm, 3, 4, 1, &old, &e) == SLAY_OK, "state create");
    slay_state_free(old);
    state_seqs(old, &status);
    CHECK(status == SLAY_ERR_INVALID_ARGUMENT, "dims of a freed state -> %d", (int)status);
    CHECK(slay_state_reset(old, -1, &e) == SLAY_ERR_INVALID_ARGUMENT, "reset of a freed state");
    size_t bytes = 0;
    CHECK(slay_state_serialized_size(old, &bytes, &e) == SLAY_ERR_INVALID_ARGUMENT && bytes == 0,
          "size of a freed state, output untouched");
    slay_state* copy = (slay_state*)(uintptr_t)0x1234;
    CHECK(slay_state_copy(old, &copy, &e) == SLAY_ERR_INVALID_ARGUMENT && copy == NULL, "copy of a freed state");
    slay_state_free(old);   /* double free */
    for (int cycle = 0; cycle < 200; cycle++) {
        slay_state* fresh = NULL;
        CHECK(slay_state_create(fm, 1 + cycle % 5, 4, 1, &fresh, &e) == SLAY_OK, "create in cycle %d", cycle);
        CHECK(fresh != old, "cycle %d: a new state never gets a freed state's handle", cycle);
        state_seqs(old, &status);
        CHECK(status == SLAY_ERR_INVALID_ARGUMENT, "cycle %d: stale state -> %d", cycle, (int)status);
        slay_state_free(old);
        CHECK(state_seqs(fresh, &status) == 1 + cycle % 5 && status == SLAY_OK,
              "cycle %d: the live state survived a stale free", cycle);
        /* The map passed as a state is refused. */
        slay_state_free((slay_state*)fm);
        state_seqs((slay_state*)fm, &status);
        CHECK(status == SLAY_ERR_INVALID_ARGUMENT, "a map passed as a state -> %d", (int)status);
        slay_state_free(fresh);
    }
    int64_t dim = dim_of(fm, &status);
    CHECK(status == SLAY_OK && dim > 0, "the map survived being freed as a state");
    slay_feature_map_free(fm);
}

int main(void) {
    test_feature_map_handles();
    test_state_handles();
    printf("handle_contract: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail > 0 ? 1 : 0;
}
