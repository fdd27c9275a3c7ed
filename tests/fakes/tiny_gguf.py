"""Write a tiny random-weight llama GGUF (byte-level vocabulary) for testing against a real llama.cpp server.

Its answers are gibberish, but the server behaves as it does with any model: streaming, chat template,
tokenizer, usage. Run it where `gguf` and `numpy` are installed (e.g. beside llama-cpp-python[server]):

    python tests/fakes/tiny_gguf.py /tmp/tiny-llama.gguf
    python -m llama_cpp.server --model /tmp/tiny-llama.gguf --port 8093 --n_ctx 512
    LLAMACPP_TEST_URL=http://127.0.0.1:8093 make test
"""

import sys

import gguf
import numpy as np

EMBED, LAYERS, HEADS, FEED_FORWARD, CONTEXT = 64, 2, 4, 128, 512
WORDS = ["▁", "▁hi", "▁the", "▁a", "e", "t", "o", "▁hello", "▁say", "s", "n", "i", "r", "h"]


def vocabulary() -> tuple[list[bytes], list[float], list[int]]:
    tokens = [b"<unk>", b"<s>", b"</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    tokens += [f"<0x{byte:02X}>".encode() for byte in range(256)]  # byte fallback: any text tokenizes
    types += [gguf.TokenType.BYTE] * 256
    tokens += [word.encode() for word in WORDS]
    types += [gguf.TokenType.NORMAL] * len(WORDS)
    scores = [0.0] * (3 + 256) + [-float(i + 1) for i in range(len(WORDS))]
    return tokens, scores, types


def write(path: str) -> None:
    tokens, scores, types = vocabulary()
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("tiny-test-llama")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(EMBED)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(EMBED // HEADS)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_chat_template(
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"
    )

    rng = np.random.default_rng(0)

    def weights(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    ones = np.ones(EMBED, dtype=np.float32)
    writer.add_tensor("token_embd.weight", weights(len(tokens), EMBED))
    writer.add_tensor("output_norm.weight", ones)
    writer.add_tensor("output.weight", weights(len(tokens), EMBED))
    for layer in range(LAYERS):
        prefix = f"blk.{layer}."
        writer.add_tensor(prefix + "attn_norm.weight", ones)
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(prefix + name + ".weight", weights(EMBED, EMBED))
        writer.add_tensor(prefix + "ffn_norm.weight", ones)
        writer.add_tensor(prefix + "ffn_gate.weight", weights(FEED_FORWARD, EMBED))
        writer.add_tensor(prefix + "ffn_up.weight", weights(FEED_FORWARD, EMBED))
        writer.add_tensor(prefix + "ffn_down.weight", weights(EMBED, FEED_FORWARD))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    write(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tiny-llama.gguf")
