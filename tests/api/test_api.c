/* test_api.c: the public interface, used the way an embedding program would: load a
 * checkpoint written by the engine, ask about an image, and get clear errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sevo/sevo.h"

#include "../test_util.h"
#include "core/fsutil.h"
#include "method/hsr_ee.h"
#include "data/synth.h"
#include "model/checkpoint.h"
#include "model/prompt.h"

static void test_version(void **state) {
    (void)state;
    assert_string_equal(sevo_version(), SEVO_VERSION);
}

static void test_load_errors(void **state) {
    (void)state;
    sevo_model *m = (sevo_model *)1;
    char err[512];
    assert_int_equal(sevo_model_load(&m, "/nonexistent/sevo-model", err, sizeof err), -1);
    assert_null(m);
    assert_non_null(strstr(err, "/nonexistent/sevo-model"));
}

static void test_ask_untrained_model(void **state) {
    (void)state;
    char dir[] = "/tmp/sevo-api-XXXXXX";
    assert_non_null(mkdtemp(dir));
    sevo_error e;
    /* a world image and an untrained tiny model saved as a checkpoint */
    synth_options o;
    synth_options_default(&o);
    char world[128], ckpt[128];
    snprintf(world, sizeof world, "%s/world", dir);
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", dir);
    o.output_dir = world;
    o.num_train = 2;
    o.num_test = 2;
    assert_int_equal(synth_generate(&o, &e), 0);
    const char *texts[] = {"is there a red circle ? yes no"};
    sevo_tokenizer *tok = NULL;
    assert_int_equal(tokenizer_build_wordlevel(&tok, texts, 1, PROMPT_SPECIAL_TOKENS, PROMPT_NUM_SPECIAL_TOKENS, &e), 0);
    vlm_config c;
    vlm_config_tiny(&c, tokenizer_vocab_size(tok));
    c.bos_token_id = tokenizer_token_id(tok, "<bos>");
    c.eos_token_id = tokenizer_token_id(tok, "<eos>");
    c.pad_token_id = tokenizer_token_id(tok, "<pad>");
    c.image_token_id = tokenizer_token_id(tok, "<image>");
    vlm *vm = NULL;
    assert_int_equal(vlm_create(&vm, &c, &e), 0);
    vlm_init_weights(vm, 1);
    assert_int_equal(checkpoint_save_model(ckpt, vm, tok, &e), 0);
    vlm_free(vm);
    tokenizer_free(tok);

    sevo_model *m = NULL;
    char err[512], img[256];
    if (sevo_model_load(&m, ckpt, err, sizeof err)) fail_msg("%s", err);
    snprintf(img, sizeof img, "%s/images/test_000000.png", world);
    sevo_answer a;
    if (sevo_model_ask(m, img, "is there a red circle ?", 5, &a, err, sizeof err)) fail_msg("%s", err);
    assert_true(a.tokens_generated > 0);
    assert_true(a.num_steps >= 0 && a.num_steps <= 5);
    /* errors: a missing image, a bad step budget */
    assert_int_equal(sevo_model_ask(m, "/nonexistent.png", "q ?", 5, &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent.png"));
    assert_int_equal(sevo_model_ask(m, img, "q ?", 0, &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "max_steps"));
    assert_int_equal(a.exited_early, 0);

    /* an HSR-EE gate whose threshold every score passes: the first step ends the
     * reasoning; a gate for another width is refused */
    sevo_answer fixed;
    if (sevo_model_ask(m, img, "is there a red circle ?", 5, &fixed, err, sizeof err)) fail_msg("%s", err);
    char gpath[256];
    snprintf(gpath, sizeof gpath, "%s/gate.safetensors", dir);
    hsr_gate g;
    assert_int_equal(hsr_gate_init(&g, c.text.hidden_size + 1, 4, 0.5f, 1, &e), 0);
    assert_int_equal(hsr_gate_save(&g, gpath, &e), 0);
    hsr_gate_release(&g);
    assert_int_equal(sevo_model_use_gate(m, gpath, err, sizeof err), -1);
    assert_non_null(strstr(err, "hidden size"));
    assert_int_equal(hsr_gate_init(&g, c.text.hidden_size, 4, 0.5f, 1, &e), 0);
    g.theta_tau = -30.0f; /* tau ~ 1e-13 */
    snprintf(gpath, sizeof gpath, "%s/%s", dir, HSR_GATE_FILE);
    assert_int_equal(hsr_gate_save(&g, gpath, &e), 0);
    hsr_gate_release(&g);
    if (sevo_model_use_gate(m, dir, err, sizeof err)) fail_msg("%s", err);
    if (sevo_model_ask(m, img, "is there a red circle ?", 5, &a, err, sizeof err)) fail_msg("%s", err);
    /* the same greedy trace up to the first step, where the gate stops it: an early
     * exit only if the model would have gone on to a second step */
    assert_string_equal(a.perception, fixed.perception);
    assert_int_equal(a.num_steps, fixed.num_steps > 0 ? 1 : 0);
    assert_int_equal(a.exited_early, fixed.num_steps > 1);
    sevo_model_free(m);
    sevo_remove_tree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_ask_untrained_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
