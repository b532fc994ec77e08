/* cmd_synth.c: `sevo synth` renders the embedded synthetic world (DESIGN §2). */
#include <stdio.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "core/threads.h"
#include "data/synth.h"

int cmd_synth(int argc, char **argv) {
    sevo_config cfg;
    config_defaults(&cfg);
    const char *out = NULL;
    int seed = -1;
    const cli_flag flags[] = {
        {"output_dir", FLAG_STRING, &out, NULL, "where to write images/ and the JSONL splits"},
        {"num_train", FLAG_CONFIG, NULL, "synth.num_train", "training samples"},
        {"num_test", FLAG_CONFIG, NULL, "synth.num_test", "test samples (and POPE questions per split)"},
        {"image_size", FLAG_CONFIG, NULL, "synth.image_size", "image side in pixels"},
        {"cooccurrence", FLAG_CONFIG, NULL, "synth.cooccurrence", "P(partner object drawn too)"},
        {"noise", FLAG_CONFIG, NULL, "synth.noise", "pixel noise std in [0,1]"},
        {"faint_fraction", FLAG_CONFIG, NULL, "synth.faint_fraction", "P(a partner object is drawn faint)"},
        {"faint_contrast", FLAG_CONFIG, NULL, "synth.faint_contrast", "a faint object's opacity, (0,1]"},
        {"annotation_noise", FLAG_CONFIG, NULL, "synth.annotation_noise",
         "P(a train record has a caption naming an absent partner object)"},
        {"caption_reasoning", FLAG_CONFIG, NULL, "synth.caption_reasoning",
         "a captioned record also carries the trace written from its caption (caption_steps, caption_answer)"},
        {"seed", FLAG_INT, &seed, NULL, "random seed (default: the config's seed)"},
    };
    int rc = cli_parse("synth", "Render the synthetic visual world: train.jsonl, test.jsonl and the "
                       "three POPE splits, with PNG images.",
                       argc, argv, flags, (int)(sizeof flags / sizeof flags[0]), &cfg);
    if (rc) return rc > 0 ? 0 : 2;
    synth_options o;
    synth_options_default(&o);
    o.output_dir = out ? out : cfg.data_dir;
    o.num_train = cfg.synth.num_train;
    o.num_test = cfg.synth.num_test;
    o.seed = (uint64_t)(seed >= 0 ? seed : cfg.seed);
    o.image_size = cfg.synth.image_size;
    o.cooccurrence = cfg.synth.cooccurrence;
    o.noise = cfg.synth.noise;
    o.faint_fraction = cfg.synth.faint_fraction;
    o.faint_contrast = cfg.synth.faint_contrast;
    o.annotation_noise = cfg.synth.annotation_noise;
    o.caption_reasoning = cfg.synth.caption_reasoning;
    sevo_error err;
    double t0 = sevo_now();
    if (synth_generate(&o, &err)) {
        fprintf(stderr, "sevo synth: %s\n", err.msg);
        return 1;
    }
    printf("synth: wrote %d train and %d test samples (+3 POPE splits) to %s in %.1fs\n", o.num_train,
           o.num_test, o.output_dir, sevo_now() - t0);
    return 0;
}
