/*
 * llama.cpp, unmodified, loading a model straight from a .hxz archive: the
 * archive's GGUF is handed to llama_model_load_from_file_ptr as a stdio
 * FILE * (hexz_fopen), with mmap off (LLAMA_LOAD_MODE_NONE), so llama.cpp freads its header and
 * tensors and libhexz decodes them into llama.cpp's buffers; nothing is
 * written to disk or kept twice. Then greedy generation, printed exactly as
 * llama.cpp's llama-simple prints it (scripts/llama-test.sh compares the two).
 *
 * usage: llama_hxz -m MODEL.hxz [-n N_PREDICT] [--plain] [PROMPT...]
 *   --plain: MODEL is a plain .gguf opened with fopen, through the same
 *            FILE * path (for comparisons: bench/llama_bench.py).
 *
 * Build (scripts/llama-test.sh does):
 *   cc llama_hxz.c $(pkg-config --cflags --libs hexz) -I LLAMA/include -I LLAMA/ggml/include -L LLAMA_BUILD/bin -lllama -lggml -lggml-base
 */
#include <hexz.h>
#include <llama.h>

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tokens at consecutive positions from pos_0, logits for the last one only. */
static void batch_set_tokens(struct llama_batch_ext *batch, const llama_token *tokens, int32_t n_tokens,
                             llama_pos pos_0) {
    llama_batch_ext_clear(batch);
    for (int32_t i = 0; i < n_tokens; ++i) {
        const int32_t idx = llama_batch_ext_add_token(batch, 0, tokens[i]);
        const llama_pos pos = pos_0 + i;
        llama_batch_ext_set_pos(batch, idx, &pos);
    }
    llama_batch_ext_set_output_logits(batch, n_tokens - 1, true);
}

/* A token's text, printed as llama-simple prints it (up to a NUL). */
static int print_piece(const struct llama_vocab *vocab, llama_token id) {
    char buf[129];
    int n = llama_token_to_piece(vocab, id, buf, 128, 0, true);
    if (n < 0) {
        fprintf(stderr, "llama_hxz: failed to convert a token to text\n");
        return -1;
    }
    buf[n] = 0;
    fputs(buf, stdout);
    return 0;
}

int main(int argc, char **argv) {
    setlocale(LC_NUMERIC, "C");
    const char *model_path = NULL;
    int n_predict = 32, plain = 0, i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) {
            model_path = argv[++i];
        } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            n_predict = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--plain") == 0) {
            plain = 1;
        } else {
            break;
        }
    }
    if (!model_path || n_predict < 1) {
        fprintf(stderr, "usage: %s -m MODEL.hxz [-n N_PREDICT] [--plain] [PROMPT...]\n", argv[0]);
        return 2;
    }
    /* The prompt: the remaining arguments joined by spaces, as llama-simple does. */
    size_t prompt_len = 0;
    for (int k = i; k < argc; k++) prompt_len += strlen(argv[k]) + 1;
    char *prompt = calloc(prompt_len + 32, 1);
    if (i == argc) strcpy(prompt, "Hello my name is");
    for (int k = i; k < argc; k++) {
        if (k > i) strcat(prompt, " ");
        strcat(prompt, argv[k]);
    }

    /* The model as a FILE *: the archive's GGUF, or a plain file. */
    hexz_archive *archive = NULL;
    FILE *file = NULL;
    if (plain) {
        file = fopen(model_path, "rb");
        if (!file) {
            perror(model_path);
            return 1;
        }
    } else {
        hexz_status s = hexz_open_path(model_path, NULL, &archive);
        if (s == HEXZ_STATUS_OK) s = hexz_fopen(archive, &file);
        if (s != HEXZ_STATUS_OK) {
            fprintf(stderr, "llama_hxz: %s: %s: %s\n", model_path, hexz_status_str(s), hexz_last_error());
            hexz_close(archive);
            return 1;
        }
    }

    llama_backend_init();
    struct llama_model_params model_params = llama_model_default_params();
    model_params.n_gpu_layers = 99;
    /* No mmap (a stream has no descriptor to map): llama.cpp freads. */
    model_params.load_mode = LLAMA_LOAD_MODE_NONE;
    struct llama_model *model = llama_model_load_from_file_ptr(file, model_params);
    /* llama.cpp has read every tensor: the stream and the archive can go. */
    fclose(file);
    hexz_close(archive);
    if (!model) {
        fprintf(stderr, "llama_hxz: unable to load the model\n");
        return 1;
    }

    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    const int n_prompt = -llama_tokenize(vocab, prompt, (int32_t)strlen(prompt), NULL, 0, true, true);
    llama_token *prompt_tokens = malloc(sizeof(llama_token) * (size_t)n_prompt);
    if (llama_tokenize(vocab, prompt, (int32_t)strlen(prompt), prompt_tokens, n_prompt, true, true) < 0) {
        fprintf(stderr, "llama_hxz: failed to tokenize the prompt\n");
        return 1;
    }

    struct llama_context_params ctx_params = llama_context_default_params();
    ctx_params.n_ctx = (uint32_t)(n_prompt + n_predict - 1);
    ctx_params.n_batch = (uint32_t)n_prompt;
    ctx_params.no_perf = false;
    struct llama_context *ctx = llama_init_from_model(model, ctx_params);
    if (!ctx) {
        fprintf(stderr, "llama_hxz: failed to create the llama_context\n");
        return 1;
    }
    struct llama_sampler_chain_params sparams = llama_sampler_chain_default_params();
    sparams.no_perf = false;
    struct llama_sampler *smpl = llama_sampler_chain_init(sparams);
    llama_sampler_chain_add(smpl, llama_sampler_init_greedy());

    for (int k = 0; k < n_prompt; k++)
        if (print_piece(vocab, prompt_tokens[k]) != 0) return 1;

    struct llama_batch_ext *batch = llama_batch_ext_init(ctx);
    int n_tokens = n_prompt;
    batch_set_tokens(batch, prompt_tokens, n_prompt, 0);
    if (llama_model_has_encoder(model)) {
        if (llama_process(ctx, LLAMA_PROCESS_TYPE_ENCODE, batch)) {
            fprintf(stderr, "llama_hxz: failed to eval\n");
            return 1;
        }
        llama_token start = llama_model_decoder_start_token(model);
        if (start == LLAMA_TOKEN_NULL) start = llama_vocab_bos(vocab);
        batch_set_tokens(batch, &start, 1, 0);
        n_tokens = 1;
    }

    for (int n_pos = 0; n_pos + n_tokens < n_prompt + n_predict;) {
        if (llama_process(ctx, LLAMA_PROCESS_TYPE_DECODE, batch)) {
            fprintf(stderr, "llama_hxz: failed to eval\n");
            return 1;
        }
        n_pos += n_tokens;
        llama_token next = llama_sampler_sample(smpl, ctx, -1);
        if (llama_vocab_is_eog(vocab, next)) break;
        if (print_piece(vocab, next) != 0) return 1;
        fflush(stdout);
        batch_set_tokens(batch, &next, 1, n_pos);
        n_tokens = 1;
    }
    printf("\n");

    llama_batch_ext_free(batch);
    llama_sampler_free(smpl);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    free(prompt_tokens);
    free(prompt);
    return 0;
}
