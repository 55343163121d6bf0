from .infopro_encoder_decoder import InfoProEncoderDecoder, synthetic_seg_batch

__all__ = ['InfoProEncoderDecoder', 'synthetic_seg_batch']
