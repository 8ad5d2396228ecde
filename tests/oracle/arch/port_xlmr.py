"""PyTorch port of XLM-RoBERTa (XLMRobertaModel, XLMRobertaForSequenceClassification),
forward path only, eval mode, fp32, eager attention, one unpadded sequence.

Follows: huggingface/transformers src/transformers/models/xlm_roberta/modeling_xlm_roberta.py
at commit 015bfeb86891c5f5e450f48942260ac3e2cd2bf2:
- XLMRobertaEmbeddings: word + token_type + position embeddings, LayerNorm; the
  position ids come from create_position_ids_from_input_ids: for every non-pad
  token, padding_idx + (its 1-based index among non-pad tokens); pad tokens get
  padding_idx. So an unpadded sequence uses positions padding_idx+1 ... padding_idx+n.
- The encoder layers are "Copied from transformers.models.roberta...", which are
  BERT's (XLMRobertaSelfAttention/SelfOutput/Intermediate/Output): reused from port_bert.
- XLMRobertaClassificationHead: x = features[:, 0]; dense; tanh; out_proj.
  XLMRobertaForSequenceClassification builds its XLMRobertaModel with
  add_pooling_layer=False, so there is no roberta.pooler in those checkpoints.
"""
import torch

from port_bert import bert_embeddings, bert_layer, linear

SOURCE = ("huggingface/transformers src/transformers/models/xlm_roberta/modeling_xlm_roberta.py "
          "015bfeb86891c5f5e450f48942260ac3e2cd2bf2")


def create_position_ids_from_input_ids(ids, padding_idx):
    mask = ids.ne(padding_idx).int()
    incremental = torch.cumsum(mask, dim=0).type_as(mask) * mask
    return incremental.long() + padding_idx


def xlmr_model(w, cfg, ids, prefix=""):
    """Returns last_hidden_state (seq, hidden). prefix: "" or "roberta."."""
    ids = torch.tensor(ids, dtype=torch.long)
    pos = create_position_ids_from_input_ids(ids, cfg["pad_token_id"])
    type_ids = torch.zeros_like(ids)  # type_vocab_size 1; the tokenizer gives no type ids
    x = bert_embeddings(w, prefix, ids, type_ids, pos, cfg)
    for i in range(cfg["num_hidden_layers"]):
        x = bert_layer(w, "%sencoder.layer.%d" % (prefix, i), x, cfg)
    return x


def xlmr_for_sequence_classification(w, cfg, ids):
    hidden = xlmr_model(w, cfg, ids, prefix="roberta.")
    x = torch.tanh(linear(w, "classifier.dense", hidden[0]))
    return linear(w, "classifier.out_proj", x)
