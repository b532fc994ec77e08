/* report.c: report.html from a pipeline run's files (see report.h). */
#include "pipeline/report.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/strbuf.h"

#define MAX_SERIES 4

/* One line of a chart: y over x. */
typedef struct series {
    const char *name;
    double *x, *y;
    int n, cap;
} series;

static void series_free(series *s) {
    free(s->x);
    free(s->y);
    s->x = s->y = NULL;
    s->n = s->cap = 0;
}

static int series_push(series *s, double x, double y, sevo_error *err) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        double *nx = realloc(s->x, (size_t)cap * sizeof *nx);
        if (nx) s->x = nx;
        double *ny = nx ? realloc(s->y, (size_t)cap * sizeof *ny) : NULL;
        if (!nx || !ny) return sevo_fail(err, "out of memory (report series)");
        s->y = ny;
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
    return 0;
}

/* Reads (x_key, y_key[i]) from every line of a metrics.jsonl into out[i]. A missing file
 * leaves the series empty (the stage did not run); a line that is not a JSON object is
 * an error naming it. Lines without one of the keys are skipped (metrics differ by
 * trainer). */
static int read_metrics(const char *path, const char *x_key, const char *const *y_keys, int n_keys, series *out,
                        sevo_error *err) {
    if (!sevo_file_exists(path)) return 0;
    char *text = NULL;
    if (sevo_read_file(path, &text, NULL, err)) return -1;
    int line_no = 0, rc = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && !rc; line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        cJSON *j = cJSON_Parse(line);
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            rc = sevo_fail(err, "%s:%d: not a JSON object", path, line_no);
            break;
        }
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, x_key);
        for (int k = 0; k < n_keys && !rc; k++) {
            const cJSON *y = cJSON_GetObjectItemCaseSensitive(j, y_keys[k]);
            if (cJSON_IsNumber(x) && cJSON_IsNumber(y) && isfinite(y->valuedouble))
                rc = series_push(&out[k], x->valuedouble, y->valuedouble, err);
        }
        cJSON_Delete(j);
    }
    free(text);
    return rc;
}

static void html_escape(strbuf *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': strbuf_puts(b, "&lt;"); break;
        case '>': strbuf_puts(b, "&gt;"); break;
        case '&': strbuf_puts(b, "&amp;"); break;
        case '"': strbuf_puts(b, "&quot;"); break;
        default: strbuf_put(b, s, 1);
        }
    }
}

static const char *const COLOURS[MAX_SERIES] = {"#1f6fb4", "#d9661f", "#2a9d4b", "#8e44ad"};

/* Chart geometry: the plot area inside a W x H picture. */
enum { W = 520, H = 260, LEFT = 60, RIGHT = 16, TOP = 34, BOTTOM = 40 };

static void chart_frame(strbuf *b, const char *title, const char *x_label, int points, double y0, double y1,
                        double x0, double x1) {
    strbuf_printf(b, "<svg class=\"chart\" data-points=\"%d\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
                     "role=\"img\">\n<title>", points, W, H, W, H);
    html_escape(b, title);
    strbuf_printf(b, "</title>\n<text x=\"%d\" y=\"20\" class=\"t\">", LEFT);
    html_escape(b, title);
    strbuf_puts(b, "</text>\n");
    strbuf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" class=\"plot\"/>\n", LEFT, TOP,
                  W - LEFT - RIGHT, H - TOP - BOTTOM);
    /* y ticks at the ends and the middle, x range under the axis */
    for (int i = 0; i <= 2; i++) {
        double v = y0 + (y1 - y0) * i / 2.0;
        double py = H - BOTTOM - (H - TOP - BOTTOM) * i / 2.0;
        strbuf_printf(b, "<text x=\"%d\" y=\"%.1f\" class=\"a\" text-anchor=\"end\">%.3g</text>\n", LEFT - 6, py + 4,
                      v);
        strbuf_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"g\"/>\n", LEFT, W - RIGHT, py,
                      py);
    }
    if (x1 > x0) {
        strbuf_printf(b, "<text x=\"%d\" y=\"%d\" class=\"a\">%.4g</text>\n", LEFT, H - BOTTOM + 16, x0);
        strbuf_printf(b, "<text x=\"%d\" y=\"%d\" class=\"a\" text-anchor=\"end\">%.4g</text>\n", W - RIGHT,
                      H - BOTTOM + 16, x1);
    }
    strbuf_printf(b, "<text x=\"%d\" y=\"%d\" class=\"a\" text-anchor=\"middle\">", (LEFT + W - RIGHT) / 2,
                  H - 8);
    html_escape(b, x_label);
    strbuf_puts(b, "</text>\n");
}

/* The legend, top right, one entry per named series. */
static void chart_legend(strbuf *b, const char *const *names, int n) {
    for (int i = 0; i < n; i++) {
        int y = TOP + 14 + 16 * i;
        strbuf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>", W - RIGHT - 150, y - 9,
                      COLOURS[i % MAX_SERIES]);
        strbuf_printf(b, "<text x=\"%d\" y=\"%d\" class=\"a\">", W - RIGHT - 136, y);
        html_escape(b, names[i]);
        strbuf_puts(b, "</text>\n");
    }
}

static void not_run(strbuf *b, const char *title, const char *why) {
    strbuf_puts(b, "<p class=\"missing\">");
    html_escape(b, title);
    strbuf_puts(b, ": ");
    html_escape(b, why);
    strbuf_puts(b, "</p>\n");
}

/* A line chart of up to MAX_SERIES series sharing the axes. */
static void line_chart(strbuf *b, const char *title, const char *x_label, const series *s, int n, const char *why) {
    int points = 0;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < s[i].n; k++) {
            points++;
            x0 = fmin(x0, s[i].x[k]);
            x1 = fmax(x1, s[i].x[k]);
            y0 = fmin(y0, s[i].y[k]);
            y1 = fmax(y1, s[i].y[k]);
        }
    if (points == 0) {
        not_run(b, title, why);
        return;
    }
    if (y1 - y0 < 1e-12) { /* a flat line: give it a band to sit in */
        y0 -= 0.5 * (fabs(y0) > 1e-12 ? fabs(y0) : 1);
        y1 += 0.5 * (fabs(y1) > 1e-12 ? fabs(y1) : 1);
    }
    if (x1 - x0 < 1e-12) x1 = x0 + 1;
    chart_frame(b, title, x_label, points, y0, y1, x0, x1);
    const char *names[MAX_SERIES];
    for (int i = 0; i < n; i++) {
        names[i] = s[i].name;
        if (s[i].n == 0) continue;
        strbuf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" points=\"",
                      COLOURS[i % MAX_SERIES]);
        for (int k = 0; k < s[i].n; k++) {
            double px = LEFT + (W - LEFT - RIGHT) * (s[i].x[k] - x0) / (x1 - x0);
            double py = H - BOTTOM - (H - TOP - BOTTOM) * (s[i].y[k] - y0) / (y1 - y0);
            strbuf_printf(b, "%s%.1f,%.1f", k ? " " : "", px, py);
        }
        strbuf_puts(b, "\"/>\n");
    }
    if (n > 1) chart_legend(b, names, n);
    strbuf_puts(b, "</svg>\n");
}

/* Grouped bars: groups[g] along x, values[i][g] for bar series i (NaN = no bar). */
static void bar_chart(strbuf *b, const char *title, const char *x_label, const char *const *groups, int n_groups,
                      const char *const *names, double values[][8], int n, const char *why) {
    int points = 0;
    double y1 = 0;
    for (int i = 0; i < n; i++)
        for (int g = 0; g < n_groups; g++)
            if (!isnan(values[i][g])) {
                points++;
                y1 = fmax(y1, values[i][g]);
            }
    if (points == 0) {
        not_run(b, title, why);
        return;
    }
    if (y1 <= 0) y1 = 1;
    y1 *= 1.5; /* headroom for the legend above the tallest bars */
    chart_frame(b, title, x_label, points, 0, y1, 0, 0);
    double gw = (double)(W - LEFT - RIGHT) / n_groups, bw = gw * 0.8 / n;
    for (int g = 0; g < n_groups; g++) {
        double gx = LEFT + gw * g + gw * 0.1;
        for (int i = 0; i < n; i++) {
            if (isnan(values[i][g])) continue;
            double h = (H - TOP - BOTTOM) * values[i][g] / y1;
            strbuf_printf(b, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                             "<title>%.2f</title></rect>\n",
                          gx + bw * i, H - BOTTOM - h, bw * 0.92, h, COLOURS[i % MAX_SERIES], values[i][g]);
        }
        strbuf_printf(b, "<text x=\"%.1f\" y=\"%d\" class=\"a\" text-anchor=\"middle\">", LEFT + gw * (g + 0.5),
                      H - BOTTOM + 16);
        html_escape(b, groups[g]);
        strbuf_puts(b, "</text>\n");
    }
    chart_legend(b, names, n);
    strbuf_puts(b, "</svg>\n");
}

/* Markdown as sevo writes it (# headings, pipe tables, paragraphs) to HTML. */
static void markdown_html(strbuf *b, const char *md) {
    int in_table = 0, header = 0;
    const char *p = md;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char *line = malloc(len + 1);
        if (!line) return;
        memcpy(line, p, len);
        line[len] = '\0';
        p += len + (e ? 1 : 0);
        if (line[0] == '|') {
            if (!in_table) {
                strbuf_puts(b, "<table>\n");
                in_table = 1;
                header = 1;
            }
            if (strspn(line, "|-: ") == len) { /* the separator row */
                free(line);
                continue;
            }
            strbuf_puts(b, "<tr>");
            char *save = NULL;
            int col = 0;
            for (char *cell = strtok_r(line + 1, "|", &save); cell; cell = strtok_r(NULL, "|", &save), col++) {
                while (*cell == ' ') cell++;
                size_t cl = strlen(cell);
                while (cl && cell[cl - 1] == ' ') cell[--cl] = '\0';
                strbuf_puts(b, header ? "<th>" : col ? "<td class=\"n\">" : "<td>");
                html_escape(b, cell);
                strbuf_puts(b, header ? "</th>" : "</td>");
            }
            strbuf_puts(b, "</tr>\n");
            header = 0;
        } else {
            if (in_table) strbuf_puts(b, "</table>\n");
            in_table = 0;
            if (line[0] == '#') {
                const char *h = line + strspn(line, "#");
                strbuf_puts(b, "<h3>");
                html_escape(b, h + strspn(h, " "));
                strbuf_puts(b, "</h3>\n");
            } else if (line[0]) {
                strbuf_puts(b, "<p>");
                html_escape(b, line);
                strbuf_puts(b, "</p>\n");
            }
        }
        free(line);
    }
    if (in_table) strbuf_puts(b, "</table>\n");
}

static int markdown_file(strbuf *b, const char *path, const char *title, sevo_error *err) {
    if (!sevo_file_exists(path)) {
        not_run(b, title, "not run");
        return 0;
    }
    char *text = NULL;
    if (sevo_read_file(path, &text, NULL, err)) return -1;
    markdown_html(b, text);
    free(text);
    return 0;
}

/* Steps per question depth, fixed K and early exit, for every model of results.json. */
static int steps_chart(strbuf *b, const char *results_json, sevo_error *err) {
    const char *title = "Reasoning steps per question depth (test)";
    if (!sevo_file_exists(results_json)) {
        not_run(b, title, "evaluation not run");
        return 0;
    }
    char *text = NULL;
    if (sevo_read_file(results_json, &text, NULL, err)) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return sevo_fail(err, "%s: not valid JSON", results_json);
    static const char *const groups[3] = {"depth 1", "depth 2", "depth 3"};
    char name_buf[MAX_SERIES][160];
    const char *names[MAX_SERIES];
    double values[MAX_SERIES][8];
    int n = 0;
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models"), *m;
    cJSON_ArrayForEach(m, models) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
        const cJSON *splits = cJSON_GetObjectItemCaseSensitive(m, "splits");
        static const char *const SPLITS[2] = {"test", "test_early_exit"};
        static const char *const LABELS[2] = {"fixed K", "early exit"};
        for (int k = 0; k < 2 && n < MAX_SERIES; k++) {
            const cJSON *split = cJSON_GetObjectItemCaseSensitive(splits, SPLITS[k]);
            const cJSON *depth = cJSON_GetObjectItemCaseSensitive(split, "per_depth");
            if (!cJSON_IsObject(depth)) continue;
            snprintf(name_buf[n], sizeof name_buf[n], "%s, %s", cJSON_IsString(name) ? name->valuestring : "model",
                     LABELS[k]);
            names[n] = name_buf[n];
            for (int g = 0; g < 3; g++) {
                char key[4];
                snprintf(key, sizeof key, "%d", g + 1);
                const cJSON *bucket = cJSON_GetObjectItemCaseSensitive(depth, key);
                const cJSON *steps = cJSON_GetObjectItemCaseSensitive(bucket, "mean_steps");
                values[n][g] = cJSON_IsNumber(steps) ? steps->valuedouble : NAN;
            }
            n++;
        }
    }
    cJSON_Delete(root);
    bar_chart(b, title, "question depth", groups, 3, names, values, n, "no per-depth steps in results.json");
    return 0;
}

static const char STYLE[] =
    "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1120px;color:#222;padding:0 16px}"
    "h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}h3{font-size:15px}"
    ".charts{display:flex;flex-wrap:wrap;gap:12px}svg.chart{border:1px solid #e4e4e4;background:#fff}"
    ".plot{fill:#fafafa;stroke:#ccc}.g{stroke:#e6e6e6}.t{font-weight:600;font-size:13px}.a{font-size:11px;"
    "fill:#555}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px}"
    "th{background:#f2f2f2}td.n{text-align:right;font-variant-numeric:tabular-nums}.missing{color:#888}";

/* Counts each chart's data points and marks the page, so that a headless browser can tell
 * a rendered report from an empty one; logs one line to the console. */
static const char SCRIPT[] =
    "(function(){var c=document.querySelectorAll('svg.chart'),empty=0,points=0;"
    "for(var i=0;i<c.length;i++){var n=+c[i].getAttribute('data-points');points+=n;"
    "if(!(n>0)||c[i].querySelectorAll('polyline,rect.bar').length===0)empty++;}"
    "document.body.setAttribute('data-charts',String(c.length));"
    "document.body.setAttribute('data-charts-empty',String(empty));"
    "console.log('sevo report: '+c.length+' charts, '+points+' points, '+empty+' empty');})();";

int report_write(const sevo_config *cfg, const char *ablation_md, const char *path, sevo_error *err) {
    strbuf b = {0};
    series s[MAX_SERIES];
    char file[4096];
    int rc = -1;
    memset(s, 0, sizeof s);
    strbuf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>sevo run: ");
    html_escape(&b, cfg->output_dir);
    strbuf_printf(&b, "</title>\n<style>%s</style></head>\n<body>\n<h1>sevo run: ", STYLE);
    html_escape(&b, cfg->output_dir);
    strbuf_printf(&b, "</h1>\n<p>Seed %lld; model %s; K = %d reasoning steps.</p>\n", (long long)cfg->seed,
                  cfg->model.model_name_or_path, cfg->hsr_ee.max_reasoning_steps);

    strbuf_puts(&b, "<h2>Training</h2>\n<div class=\"charts\">\n");
    static const char *const SFT_KEYS[1] = {"loss"};
    sevo_path_join(file, sizeof file, cfg->sft_output_dir, "metrics.jsonl");
    s[0].name = "loss";
    if (read_metrics(file, "step", SFT_KEYS, 1, s, err)) goto done;
    line_chart(&b, "SFT loss", "optimizer step", s, 1, "SFT not run");
    series_free(&s[0]);

    static const char *const DPO_KEYS[2] = {"loss", "rewards/accuracies"};
    sevo_path_join(file, sizeof file, cfg->sr_dpo_output_dir, "metrics.jsonl");
    s[0].name = "loss";
    s[1].name = "reward accuracy";
    if (read_metrics(file, "step", DPO_KEYS, 2, s, err)) goto done;
    line_chart(&b, "SR-DPO loss", "optimizer step", &s[0], 1, "SR-DPO not run");
    line_chart(&b, "SR-DPO reward accuracy", "optimizer step", &s[1], 1, "SR-DPO not run");
    series_free(&s[0]);
    series_free(&s[1]);

    static const char *const GATE_KEYS[3] = {"gate_loss", "heldout_loss", "tau"};
    sevo_path_join(file, sizeof file, cfg->hsr_ee_output_dir, "metrics.jsonl");
    s[0].name = "train";
    s[1].name = "held out";
    s[2].name = "tau";
    if (read_metrics(file, "epoch", GATE_KEYS, 3, s, err)) goto done;
    line_chart(&b, "Gate loss (BCE)", "epoch", s, 2, "gate training not run");
    line_chart(&b, "Exit threshold tau", "epoch", &s[2], 1, "gate training not run");
    for (int i = 0; i < 3; i++) series_free(&s[i]);
    strbuf_puts(&b, "</div>\n");

    strbuf_puts(&b, "<h2>Early exit</h2>\n<div class=\"charts\">\n");
    sevo_path_join(file, sizeof file, cfg->eval_output_dir, "results.json");
    if (steps_chart(&b, file, err)) goto done;
    strbuf_puts(&b, "</div>\n<h2>Results</h2>\n");
    sevo_path_join(file, sizeof file, cfg->eval_output_dir, "results.md");
    if (markdown_file(&b, file, "Results", err)) goto done;
    strbuf_puts(&b, "<h2>Ablations</h2>\n");
    if (ablation_md) {
        if (markdown_file(&b, ablation_md, "Ablations", err)) goto done;
    } else {
        not_run(&b, "Ablations", "not run (sevo pipeline --ablation all)");
    }
    strbuf_printf(&b, "<script>%s</script>\n</body></html>\n", SCRIPT);
    if (!b.p || b.oom) {
        sevo_fail(err, "out of memory (report)");
        goto done;
    }
    rc = sevo_write_file_atomic(path, b.p, b.len, err);
done:
    for (int i = 0; i < MAX_SERIES; i++) series_free(&s[i]);
    strbuf_free(&b);
    return rc;
}
