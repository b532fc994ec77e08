/* report.h: report.html, one self-contained page that shows a pipeline run.
 *
 * The page is written from the files the stages left behind: the SFT loss, the DPO loss
 * and reward accuracy (metrics.jsonl of each trainer), the gate's loss and τ per epoch
 * (the HSR-EE metrics.jsonl), the reasoning steps per question depth at fixed depth and
 * with early exit (the evaluation's results.json), the results table (results.md) and,
 * when the ablations ran, their table. Charts are inline SVG drawn here; there are no
 * external scripts, styles, fonts or images, so the file opens offline and can be
 * mailed. A short inline script counts the charts' data points, marks the page
 * (`data-charts`, `data-charts-empty` on <body>) and logs one console line, so that a
 * headless browser can check that it rendered. A stage whose files are missing gets a
 * "not run" note instead of its chart. */
#ifndef SEVO_PIPELINE_REPORT_H
#define SEVO_PIPELINE_REPORT_H

#include "core/config.h"
#include "core/error.h"

/* Writes the report of the run configured by cfg to path (atomically). ablation_md:
 * the ablation table's Markdown file, or NULL when the ablations did not run. */
int report_write(const sevo_config *cfg, const char *ablation_md, const char *path, sevo_error *err);

#endif
