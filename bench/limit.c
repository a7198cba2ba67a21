/*
 * limit.c - the benchmark's lower bound: the standard rendition set
 * (bench/renditions.conf) made by libvips directly, in process, with no
 * Kafka, no object store and no checks beyond what libvips does itself.
 *
 * Same cascade as imgsink's pipeline: one shrink-on-load decode into the
 * largest rendition's box, auto-oriented, kept in memory; the smaller
 * renditions are cut from it; every output is encoded to memory without
 * metadata. THREADS threads take images from a shared list, one libvips
 * thread each (as imgsink's job threads with vips.concurrency=1).
 *
 *   limit [-t THREADS] [-r REPEAT] [-o OUTDIR] [-R RENDITIONS] FILE...
 *
 * -R takes another rendition set in imgsink's `renditions` syntax
 * (name=WxH/jpeg|webp/QUALITY,...; the small-image workload's), the first
 * (largest) being the one decoded into.
 *
 * Every file is read into memory first; the timed part is processing only.
 * Prints one line of JSON: images, seconds, images_per_s, megapixels_per_s,
 * output bytes. -o writes the renditions of the first pass for inspection.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>
#include <vips/vips.h>

typedef struct {
    const char *path;
    void *buf;
    size_t len;
    double mpix;
} input_t;

/* The rendition set: name, box, format, quality; the standard one unless
 * -R replaces it. */
typedef struct {
    char name[32];
    int w, h;
    int webp;
    int q;
} rend_t;
#define MAXREND 8
static rend_t rend[MAXREND] = {
    {"large", 2048, 2048, 1, 80},
    {"medium", 512, 512, 0, 82},
    {"thumb", 128, 128, 0, 80},
};
static size_t nrend = 3;

/* -R: name=WxH/jpeg|webp/Q,... into rend[]; 0 or -1. */
static int parse_renditions(const char *spec)
{
    char buf[1024], *save = NULL, *tok;
    size_t n = 0;

    if (strlen(spec) >= sizeof(buf))
        return -1;
    strcpy(buf, spec);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char fmt[8];
        rend_t *r = &rend[n];
        if (n == MAXREND ||
            sscanf(tok, "%31[^=]=%dx%d/%7[a-z]/%d", r->name, &r->w, &r->h, fmt, &r->q) != 5 ||
            r->w < 1 || r->h < 1 || (strcmp(fmt, "jpeg") && strcmp(fmt, "webp")))
            return -1;
        r->webp = !strcmp(fmt, "webp");
        n++;
    }
    if (!n)
        return -1;
    nrend = n;
    return 0;
}

static input_t *inputs;
static int ninputs, repeat = 1;
static atomic_int next_job;
static atomic_llong out_bytes;
static atomic_int failures;
static const char *outdir;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int encode(VipsImage *im, int r, void **out, size_t *len)
{
    if (rend[r].webp)
        return vips_webpsave_buffer(im, out, len, "Q", rend[r].q, "strip", TRUE, NULL);
    return vips_jpegsave_buffer(im, out, len, "Q", rend[r].q, "strip", TRUE, "optimize_coding",
                                TRUE, NULL);
}

static void save_copy(const input_t *in, int r, const void *buf, size_t len)
{
    char path[4096];
    const char *base = strrchr(in->path, '/');
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s.%s.%s", outdir, base ? base + 1 : in->path, rend[r].name,
             rend[r].webp ? "webp" : "jpg");
    if ((fp = fopen(path, "wb"))) {
        fwrite(buf, 1, len, fp);
        fclose(fp);
    }
}

/* One image: decode once into the largest box, then every rendition. */
static int process(const input_t *in, int first_pass)
{
    VipsImage *base = NULL, *mem = NULL;
    int rc = -1;

    if (vips_thumbnail_buffer(in->buf, in->len, &base, rend[0].w, "height", rend[0].h, "size",
                              VIPS_SIZE_DOWN, NULL) ||
        !(mem = vips_image_copy_memory(base)))
        goto done;
    for (size_t r = 0; r < nrend; r++) {
        VipsImage *im = NULL;
        void *out = NULL;
        size_t len = 0;
        int err;

        if (r == 0) {
            im = mem;
            g_object_ref(im);
        } else if (vips_thumbnail_image(mem, &im, rend[r].w, "height", rend[r].h, "size",
                                        VIPS_SIZE_DOWN, NULL)) {
            goto done;
        }
        err = encode(im, (int)r, &out, &len);
        g_object_unref(im);
        if (err)
            goto done;
        atomic_fetch_add(&out_bytes, (long long)len);
        if (outdir && first_pass)
            save_copy(in, (int)r, out, len);
        g_free(out);
    }
    rc = 0;
done:
    if (rc) {
        fprintf(stderr, "limit: %s: %s", in->path, vips_error_buffer());
        vips_error_clear();
    }
    VIPS_UNREF(base);
    VIPS_UNREF(mem);
    return rc;
}

static void *thread_main(void *arg)
{
    int job;
    (void)arg;
    while ((job = atomic_fetch_add(&next_job, 1)) < ninputs * repeat)
        if (process(&inputs[job % ninputs], job < ninputs))
            atomic_fetch_add(&failures, 1);
    vips_thread_shutdown();
    return NULL;
}

static int read_file(input_t *in)
{
    FILE *fp = fopen(in->path, "rb");
    long n;
    int rc = -1;

    if (!fp)
        return -1;
    if (!fseek(fp, 0, SEEK_END) && (n = ftell(fp)) > 0 && !fseek(fp, 0, SEEK_SET) &&
        (in->buf = malloc((size_t)n)) && fread(in->buf, 1, (size_t)n, fp) == (size_t)n) {
        in->len = (size_t)n;
        rc = 0;
    }
    fclose(fp);
    return rc;
}

int main(int argc, char **argv)
{
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN), opt;
    double mpix = 0, t0, t1;
    pthread_t *tid;

    if (VIPS_INIT(argv[0]))
        vips_error_exit("libvips start-up");
    while ((opt = getopt(argc, argv, "t:r:o:R:")) != -1) {
        switch (opt) {
        case 't':
            threads = atoi(optarg);
            break;
        case 'r':
            repeat = atoi(optarg);
            break;
        case 'o':
            outdir = optarg;
            break;
        case 'R':
            if (parse_renditions(optarg)) {
                fprintf(stderr, "limit: -R %s: expected name=WxH/jpeg|webp/QUALITY,...\n", optarg);
                return 2;
            }
            break;
        default:
            fprintf(stderr,
                    "usage: %s [-t THREADS] [-r REPEAT] [-o OUTDIR] [-R RENDITIONS] FILE...\n",
                    argv[0]);
            return 2;
        }
    }
    if (optind >= argc || threads < 1 || repeat < 1) {
        fprintf(stderr, "usage: %s [-t THREADS] [-r REPEAT] [-o OUTDIR] [-R RENDITIONS] FILE...\n",
                argv[0]);
        return 2;
    }
    /* As imgsink: no operation cache, one libvips thread per image. */
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    vips_concurrency_set(1);

    ninputs = argc - optind;
    inputs = calloc((size_t)ninputs, sizeof(*inputs));
    tid = calloc((size_t)threads, sizeof(*tid));
    if (!inputs || !tid)
        return 1;
    for (int i = 0; i < ninputs; i++) {
        VipsImage *hdr;
        inputs[i].path = argv[optind + i];
        if (read_file(&inputs[i])) {
            fprintf(stderr, "limit: cannot read %s\n", inputs[i].path);
            return 1;
        }
        if (!(hdr = vips_image_new_from_buffer(inputs[i].buf, inputs[i].len, "", NULL)))
            vips_error_exit("%s", inputs[i].path);
        inputs[i].mpix = vips_image_get_width(hdr) * (double)vips_image_get_height(hdr) / 1e6;
        mpix += inputs[i].mpix;
        g_object_unref(hdr);
    }

    t0 = now_s();
    for (int i = 0; i < threads; i++)
        if (pthread_create(&tid[i], NULL, thread_main, NULL))
            return 1;
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    t1 = now_s();

    int n = ninputs * repeat;
    printf("{\"contender\": \"limit\", \"threads\": %d, \"images\": %d, \"failures\": %d, "
           "\"seconds\": %.3f, \"images_per_s\": %.3f, \"megapixels_per_s\": %.2f, "
           "\"output_bytes\": %lld}\n",
           threads, n, atomic_load(&failures), t1 - t0, n / (t1 - t0), mpix * repeat / (t1 - t0),
           (long long)atomic_load(&out_bytes));
    for (int i = 0; i < ninputs; i++)
        free(inputs[i].buf);
    free(inputs);
    free(tid);
    vips_shutdown();
    return atomic_load(&failures) ? 1 : 0;
}
