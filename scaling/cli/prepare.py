"""`scaling prepare TEXT_FILES... --out DIR`: byte-tokenise a user's text for training (data.name=DIR)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="tokenise text files into a training data folder",
        description="Byte-tokenise TEXT_FILES (concatenated in order) into DIR: train.bin, val.bin "
        "(uint16 tokens, every tenth block held out) and meta.json. Train on it with data.name=DIR.",
    )
    parser.add_argument("texts", nargs="+", metavar="TEXT_FILES", help="text files, read as bytes")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from scaling.training.data import prepare_text  # numpy and the data module: only for this command

    data = prepare_text(args.texts, args.out)
    meta = data.meta
    print(
        f"prepared {meta['n_tokens']:,} tokens (vocabulary {meta['vocab_size']}): "
        f"{meta['n_train']:,} train, {meta['n_val']:,} validation; "
        f"unigram entropy {meta['unigram_entropy']:.3f} nats/token -> {data.folder}"
    )
    print(f"train on it with: scaling-train data.name={data.folder.resolve()}")
    return 0
